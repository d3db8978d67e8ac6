"""Load G-Net (shipped, a run checkpoint or exported safetensors) and draw faces from it."""


import torch

from faceattr import weights
from faceattr.errors import FaceattrError
from faceattr.imaging import save_grid, to_uint8
from faceattr.networks import Generator

GEN_KEYS = ("z_dim", "resolution", "width")


def load_generator(checkpoint=None) -> Generator:
    """G-Net in eval mode with gradients off. A training checkpoint gives its EMA weights."""
    path = checkpoint or weights.shipped_path("gnet")
    return weights.load_network(Generator, path, "gnet",
                                lambda ckpt: (ckpt["G_ema"], {k: ckpt["config"][k] for k in GEN_KEYS}))


def export_generator(checkpoint, out, card: dict | None = None):
    """Run checkpoint -> shippable G-Net safetensors (EMA weights, fp16)."""
    g = load_generator(checkpoint)
    weights.save(g, out, "gnet", {k: getattr(g, k) for k in GEN_KEYS}, card=card)


@torch.no_grad()
def decode(g, z, batch: int = 256):
    """Latents -> uint8 faces (N, H, W, 3), in chunks to bound memory."""
    return torch.cat([torch.from_numpy(to_uint8(g(z[i:i + batch]))) for i in range(0, len(z), batch)]).numpy()


def sample(g: Generator, n: int, seed: int = 0, truncation: float = 1.0):
    """n faces as uint8 (n, H, W, 3); the same seed always gives the same faces."""
    z = torch.randn(n, g.z_dim, generator=torch.Generator().manual_seed(seed)) * truncation
    return decode(g, z)


def sample_grid(output, n=64, seed=0, checkpoint=None, truncation=1.0):
    if n < 1:
        raise FaceattrError("-n must be at least 1")
    save_grid(sample(load_generator(checkpoint), n, seed, truncation), output)
