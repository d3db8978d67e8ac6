"""The inversion encoders (beyond the patent): image -> latent, a start for S31 (`edit.invert.invert`): `Encoder`
for the patent G-Net (z), `StyleEncoder` for MobileStyleGAN (w)."""

import torch
import torch.nn.functional as F
from torch import nn

from faceattr.nets.gnet import channels_at

ENC_KEYS = ("z_dim", "resolution", "width")


class Encoder(nn.Module):
    """Inversion encoder (beyond the patent): image (B, 3, R, R) in [-1, 1] -> z (B, z_dim), a start for S31.

    D-Net-shaped: a stride-2 convolution per resolution down to 4x4, then a linear layer; no
    normalisation across the batch, so a face's z does not depend on its batch mates.
    """

    def __init__(self, z_dim: int = 128, resolution: int = 64, width: int = 2048):
        super().__init__()
        self.z_dim, self.resolution, self.width = z_dim, resolution, width
        layers, c, res = [], 3, resolution
        while res > 4:
            res //= 2
            layers += [nn.Conv2d(c, channels_at(res, width), 4, 2, 1), nn.LeakyReLU(0.2)]
            c = channels_at(res, width)
        self.features = nn.Sequential(*layers)
        self.out = nn.Linear(c * 16, z_dim)

    def forward(self, x):
        return self.out(self.features(x).flatten(1))


def _norm(c: int, groups: int) -> nn.Module:
    return nn.GroupNorm(min(groups, c // 4), c) if groups else nn.Identity()


class ResDown(nn.Module):
    """conv3x3 stride 2 -> GN -> LReLU -> conv3x3 -> GN, plus an avg-pool + 1x1 shortcut, -> LReLU: half the side."""

    def __init__(self, c_in: int, c_out: int, groups: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, 2, 1, bias=not groups)
        self.n1 = _norm(c_out, groups)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=not groups)
        self.n2 = _norm(c_out, groups)
        self.skip = nn.Conv2d(c_in, c_out, 1, bias=False)

    def forward(self, x):
        h = F.leaky_relu(self.n1(self.conv1(x)), 0.2)
        h = self.n2(self.conv2(h))
        return F.leaky_relu(h + self.skip(F.avg_pool2d(x, 2)), 0.2)


class StyleEncoder(nn.Module):
    """S31's start on MobileStyleGAN: aligned face (B, 3, R, R) in [-1, 1] -> style w (B, 512).

    Trained on the generator's own corpus faces, whose w is known from their seeds. A space-to-depth
    stem (pixel_unshuffle), one `ResDown` per entry of `channels` down to 4 px, two linear layers; the
    output is the offset from the corpus' mean style in units of its per-dimension std (buffers
    `mean`, `std`), so the last layer starts at zero: at the mean face.
    """

    def __init__(self, resolution: int = 128, channels=(32, 64, 128, 256), groups: int = 8, hidden: int = 1024,
                 unshuffle: int = 2):
        super().__init__()
        self.resolution, self.channels, self.groups = resolution, list(channels), groups
        self.hidden, self.unshuffle = hidden, unshuffle
        self.stem = nn.Conv2d(3 * unshuffle * unshuffle, channels[0], 3, 1, 1)
        blocks, c = [], channels[0]
        for c_out in channels:
            blocks.append(ResDown(c, c_out, groups))
            c = c_out
        self.blocks = nn.Sequential(*blocks)
        side = (resolution // unshuffle) >> len(channels)
        self.fc = nn.Linear(c * side * side, hidden)
        self.out = nn.Linear(hidden, 512)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.register_buffer("mean", torch.zeros(1, 512))
        self.register_buffer("std", torch.ones(1, 512))

    def net_config(self) -> dict:
        return {"resolution": self.resolution, "channels": self.channels, "groups": self.groups,
                "hidden": self.hidden, "unshuffle": self.unshuffle}

    def forward(self, x):
        if self.unshuffle > 1:
            x = F.pixel_unshuffle(x, self.unshuffle)
        h = self.blocks(F.leaky_relu(self.stem(x), 0.2))
        return self.mean + self.std * self.out(F.leaky_relu(self.fc(h.flatten(1)), 0.2)).float()
