"""The patent's networks: G-Net (generator) and D-Net (discriminator), DCGAN-shaped; drawing faces from G.

G maps z ~ N(0, I) to an RGB face in [-1, 1]; D maps a face to one real/fake logit.
Both double/halve the resolution per block, so 64 and 128 (any power of two >= 8) work.
G normalises per pixel (PixelNorm, as in ProGAN) instead of BatchNorm, so an image
never depends on the other latents in its batch: inversion and editing (S31-S33)
optimise many latents together and must get the same face as one at a time.
"""

import math

import torch
from torch import nn
from torch.nn.utils import spectral_norm

from faceattr.imaging import to_uint8

GEN_KEYS = ("z_dim", "resolution", "width")


def channels_at(res: int, width: int) -> int:
    """Feature maps at a given resolution: wide at 4x4, halving as resolution doubles."""
    return max(16, min(512, width // res))


class PixelNorm(nn.Module):
    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


class Generator(nn.Module):
    """G-Net: z (B, z_dim) -> image (B, 3, R, R) in [-1, 1]."""

    def __init__(self, z_dim: int = 128, resolution: int = 64, width: int = 2048):
        super().__init__()
        if resolution < 8 or resolution & (resolution - 1):
            raise ValueError(f"resolution must be a power of two >= 8, got {resolution}")
        self.z_dim, self.resolution, self.width = z_dim, resolution, width
        c = channels_at(4, width)
        self.input = nn.Sequential(nn.ConvTranspose2d(z_dim, c, 4, 1, 0), PixelNorm(), nn.LeakyReLU(0.2))
        blocks = []
        res = 4
        while res * 2 < resolution:
            res *= 2
            c_out = channels_at(res, width)
            blocks += [nn.ConvTranspose2d(c, c_out, 4, 2, 1), PixelNorm(), nn.LeakyReLU(0.2)]
            c = c_out
        self.blocks = nn.Sequential(*blocks)
        self.to_rgb = nn.ConvTranspose2d(c, 3, 4, 2, 1)

    def forward(self, z):
        x = self.input(z.view(z.shape[0], self.z_dim, 1, 1))
        return torch.tanh(self.to_rgb(self.blocks(x)))


class MinibatchStd(nn.Module):
    """Append the feature std over small groups of consecutive samples (ProGAN), so D sees diversity.

    Groups are consecutive, so a batch of [real; fake] with group-aligned halves never mixes the two.
    """

    def __init__(self, group: int = 4):
        super().__init__()
        self.group = group

    def forward(self, x):
        n, c, h, w = x.shape
        g = math.gcd(self.group, n)
        std = x.float().view(n // g, g, c, h, w).var(dim=1, unbiased=False).add(1e-8).sqrt()
        std = std.mean(dim=(1, 2, 3)).to(x.dtype)
        return torch.cat([x, std.repeat_interleave(g).view(n, 1, 1, 1).expand(n, 1, h, w)], dim=1)


class Discriminator(nn.Module):
    """D-Net: image (B, 3, R, R) -> real/fake logit (B,). Spectral norm optional (on by default)."""

    def __init__(self, resolution: int = 64, width: int = 2048, spectral: bool = True, mbstd: int = 4):
        super().__init__()
        self.resolution, self.width = resolution, width
        sn = spectral_norm if spectral else (lambda m: m)
        layers, c, res = [], 3, resolution
        while res > 4:
            res //= 2
            c_out = channels_at(res, width)
            layers += [sn(nn.Conv2d(c, c_out, 4, 2, 1)), nn.LeakyReLU(0.2)]
            c = c_out
        self.features = nn.Sequential(*layers)
        self.mbstd = MinibatchStd(mbstd) if mbstd > 1 else None
        self.out = sn(nn.Conv2d(c + (self.mbstd is not None), 1, 4, 1, 0))

    def forward(self, x):
        x = self.features(x)
        if self.mbstd is not None:
            x = self.mbstd(x)
        return self.out(x).view(-1)


@torch.no_grad()
def decode(g, z, batch: int = 256):
    """Latents -> uint8 faces (N, H, W, 3), in chunks to bound memory."""
    return torch.cat([torch.from_numpy(to_uint8(g(z[i:i + batch]))) for i in range(0, len(z), batch)]).numpy()


def sample(g: Generator, n: int, seed: int = 0, truncation: float = 1.0):
    """n faces as uint8 (n, H, W, 3); the same seed always gives the same faces."""
    z = torch.randn(n, g.z_dim, generator=torch.Generator().manual_seed(seed)) * truncation
    return decode(g, z)
