"""The inversion encoder (beyond the patent): image -> z, a start for S31 (`edit.invert.invert`)."""

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
