"""What the tests of S31 and S32 share: a tiny G-Net and a stand-in E-Net, both frozen, and drawable latents."""

import pytest
import torch
from torch import nn

from faceattr.nets.gnet import Generator

Z = 16


@pytest.fixture(scope="module")
def G():
    torch.manual_seed(0)
    return Generator(z_dim=Z, resolution=16, width=256).eval().requires_grad_(False)


class TinyE(nn.Module):
    """Stands in for E-Net: [-1, 1] images (B, 3, 16, 16) -> logits (B, 2)."""

    attr_names = ["A", "B"]

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.net = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(8 * 8 * 8, 2))

    def forward(self, x):
        return self.net(x)


@pytest.fixture(scope="module")
def E():
    return TinyE().eval().requires_grad_(False)


@pytest.fixture(scope="module")
def z_true():
    return torch.randn(3, Z, generator=torch.Generator().manual_seed(5))
