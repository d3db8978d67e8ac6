"""S33 `transfer`: the converted face is G(z2) (`nets.gnet.decode`); `transfer` instead applies the change
G(z2) - G(z1) to the original pixels, so detail the GAN cannot draw survives."""

import torch
import torch.nn.functional as F


def gaussian_blur(x, sigma):
    """Separable Gaussian blur of (B, C, H, W) with reflect padding; sigma in pixels."""
    r = max(1, int(3 * sigma + 0.5))
    k = torch.exp(-torch.arange(-r, r + 1, dtype=x.dtype, device=x.device).pow(2) / (2 * sigma ** 2))
    k = (k / k.sum()).repeat(x.shape[1], 1, 1, 1)
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k.view(-1, 1, 1, 2 * r + 1), groups=x.shape[1])
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), k.view(-1, 1, 2 * r + 1, 1), groups=x.shape[1])


def _resized(x, like):
    """x bilinearly resized to the spatial size of `like`, on its device (as it is if already that size)."""
    if x.shape[-2:] != like.shape[-2:]:
        x = F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)
    return x.to(like.device)


def transfer(original, g1, g2, blur=0.0, gain=1.0, redraw=0.0):
    """S33 on the photo's own pixels: original + gain * (G(z2) - G(z1)), clamped to [-1, 1].

    All (B, 3, ., .) in [-1, 1]; the difference is computed at the GAN's resolution, optionally
    low-passed (Gaussian, `blur` = sigma in GAN pixels; 0 = off) and resized bilinearly to the
    original's size. `redraw` > 0: where the change is large the face is G(z2) itself instead, so the
    photo's own edges there (its residual original - G(z1)) do not ghost beside the moved ones: the
    residual is kept with weight exp(-(|change| / redraw)^2), |change| the channel mean, blurred over
    1/64 of the side. The caller chooses this or plain G(z2).
    """
    diff = gain * (g2.float() - g1.float())
    if blur > 0:
        diff = gaussian_blur(diff, blur)
    diff = _resized(diff, original)
    out = original.float() + diff
    if redraw > 0:
        change = gaussian_blur(diff.abs().mean(1, keepdim=True), max(1.0, original.shape[-1] / 64))
        out = out - (1 - torch.exp(-(change / redraw).square())) * (original.float() - _resized(g1.float(), original))
    return out.clamp(-1, 1)
