"""One interface for every G-Net, so the editor, the report, the encoder trainer and the server
never ask which one they have.

A generator maps a batch of latents (N, *latent_shape) to faces (N, 3, r, r) in [-1, 1],
differentiably, at any working resolution r: S31 inverts it, S32 searches its latent space and
S33 decodes the result. Two implementations: the patent's DCGAN G-Net (z, 64 px) and
MobileStyleGAN (W or W+, 1024 px), the network that draws the corpus.
"""

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from faceattr.errors import FaceattrError
from faceattr.nets import stylegan, stylegan_heads


def resize(img, resolution: int):
    """Square images to `resolution`: box filter for whole-number shrink factors (exact averages),
    antialiased bilinear otherwise."""
    size = img.shape[-1]
    if size == resolution:
        return img
    if size > resolution and size % resolution == 0:
        return F.avg_pool2d(img, size // resolution)
    return F.interpolate(img, size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False)


class Generator(nn.Module):
    """Base class: latents (N, *latent_shape) -> faces (N, 3, r, r) in [-1, 1].

    Subclasses set `name`, `latent_shape`, `native_resolution`, `default_truncation` and implement
    `mean_latent`, `_latents_from_z`, `_seed_z` and `synthesize`.
    """

    name: str
    latent_shape: tuple[int, ...]
    native_resolution: int
    default_truncation: float
    z_dim: int

    def mean_latent(self) -> torch.Tensor:
        """The centre of the latent distribution, (1, *latent_shape): a start for S31."""
        raise NotImplementedError

    def sample_latents(self, n: int | Sequence[int], truncation: float | None = None, seed: int = 0):
        """Latents (N, *latent_shape): n random draws from `seed`, or one per integer seed in a list
        (the same seed always gives the same face, whatever else is in the batch)."""
        psi = self.default_truncation if truncation is None else float(truncation)
        with torch.no_grad():
            if isinstance(n, (int, np.integer)):
                if n < 1:
                    raise FaceattrError(f"cannot draw {n} latents: need at least 1")
                return self._latents_from_z(torch.randn(int(n), self.z_dim,
                                                        generator=torch.Generator().manual_seed(seed)), psi)
            if not len(n):
                raise FaceattrError("no seeds given")
            # one seed at a time: a batched matmul may round differently from a single one
            return torch.cat([self._latents_from_z(self._seed_z(int(s)), psi) for s in n])

    def synthesize(self, latent, resolution: int | None = None):
        """Latents -> faces (N, 3, r, r) in [-1, 1] at r = resolution (default: native); differentiable."""
        raise NotImplementedError

    def forward(self, latent, resolution: int | None = None):
        return self.synthesize(latent, resolution)

    def tunable_parameters(self, resolution: int) -> dict[str, nn.Parameter]:
        """The weights that draw faces at `resolution`, by name: what S31's pivotal tuning fits to a face."""
        return dict(self.named_parameters())

    def _check(self, latent):
        if tuple(latent.shape[1:]) != tuple(self.latent_shape):
            raise FaceattrError(f"{self.name} takes latents (N, {', '.join(map(str, self.latent_shape))}), "
                                f"got {tuple(latent.shape)}")


class Tuned(Generator):
    """`base` with some weights replaced by `params` (name -> tensor; one face's pivotal tuning,
    `edit.invert.tune`), run through torch.func.functional_call: the base G-Net itself is never changed,
    so every face of a batch has its own weights beside the shared ones."""

    def __init__(self, base: Generator, params: dict[str, torch.Tensor]):
        super().__init__()
        self.base, self.params = base, params
        for name in ("name", "latent_shape", "native_resolution", "default_truncation", "z_dim"):
            setattr(self, name, getattr(base, name))

    def mean_latent(self):
        return self.base.mean_latent()

    def synthesize(self, latent, resolution: int | None = None):
        return torch.func.functional_call(self.base, self.params, (latent, resolution))


class PatentGNet(Generator):
    """The patent's DCGAN G-Net (S11-S14): z (N, 128) -> 64 px faces; other resolutions are resized."""

    name = "gnet"
    default_truncation = 1.0

    def __init__(self, g: nn.Module):
        super().__init__()
        self.g = g
        self.z_dim = g.z_dim
        self.latent_shape = (g.z_dim,)
        self.native_resolution = g.resolution

    def mean_latent(self):
        return torch.zeros(1, self.z_dim)

    def _seed_z(self, seed: int):
        return torch.randn(1, self.z_dim, generator=torch.Generator().manual_seed(seed))

    def _latents_from_z(self, z, psi: float):
        return z * psi  # truncation of a Gaussian z: shrink it towards 0

    def synthesize(self, latent, resolution: int | None = None):
        self._check(latent)
        return resize(self.g(latent), resolution or self.native_resolution)


class MobileStyleGAN(Generator):
    """MobileStyleGAN (the corpus G-Net) over W (N, 512) or W+ (N, 23, 512), native 1024 px.

    Truncation is the corpus's: psi around the corpus mean style (psi 0.7 draws corpus faces;
    the seeds of a list draw exactly the corpus face of each seed). Resolutions: 1024 the face,
    512 its exact low band, smaller ones that low band box-filtered (exact, at the cost of the whole
    network) or, with early_exit, the learnt heads' approximation at 64, 128 and 256 px (stylegan_heads).
    compile=True runs the exact path through torch.compile: about 2x faster once compiled, but each
    new batch size or resolution compiles first (minutes cold, ~30 s with inductor's on-disk cache).
    """

    name = "mobilestylegan"
    native_resolution = stylegan.RESOLUTION
    default_truncation = stylegan.PSI
    z_dim = stylegan.STYLE_DIM

    def __init__(self, wplus: bool = False, early_exit: bool = False, compile: bool = False):
        super().__init__()
        self.mapping, self.synthesis = stylegan.load_networks()
        # kept out of the module tree: a second name for `synthesis` breaks torch.func.functional_call's
        # restore of the swapped weights (see Tuned), which then leaks one face's tuning into the others
        self.__dict__["_exact"] = torch.compile(self.synthesis) if compile else self.synthesis
        self.wplus = wplus
        self.heads = nn.ModuleDict({str(r): h for r, h in stylegan_heads.load().items()}) if early_exit else {}
        self.latent_shape = (stylegan.N_STYLES, stylegan.STYLE_DIM) if wplus else (stylegan.STYLE_DIM,)

    def _as_space(self, w):
        return w[:, None].repeat(1, stylegan.N_STYLES, 1) if self.wplus else w

    def mean_latent(self):
        return self._as_space(stylegan.corpus_mean_style())

    def _seed_z(self, seed: int):
        return torch.from_numpy(stylegan.latent(seed))

    def _latents_from_z(self, z, psi: float):
        return self._as_space(stylegan.truncated_styles(z, psi))

    def tunable_parameters(self, resolution: int) -> dict[str, nn.Parameter]:
        """The synthesis weights up to the early exit at `resolution` (all of them at other resolutions),
        without the baked noise maps (fitted, those paint the photo pixel by pixel whatever the latent) and
        without the style modulations (so a latent's step still moves the styles as it did; faster, and as
        good a fit: docs/EXPERIMENTS.md)."""
        blocks = stylegan_heads.EXIT_BLOCKS.get(resolution) if str(resolution) in self.heads else None
        used = ("synthesis.input", "synthesis.conv1.", *(f"synthesis.layers.{i}." for i in range(blocks or 0)))
        return {n: p for n, p in self.named_parameters() if n.startswith("synthesis.") and not n.endswith(".noise")
                and ".modulation." not in n and (blocks is None or n.startswith(used))}

    def synthesize(self, latent, resolution: int | None = None):
        self._check(latent)
        r = resolution or self.native_resolution
        if str(r) in self.heads:
            return stylegan_heads.early_face(self.synthesis, self.heads[str(r)], latent, r)
        return resize(self._exact(latent, 512 if r <= 512 else 1024), r)
