"""MobileStyleGAN (FFHQ, a distilled StyleGAN2, arXiv 2104.04767) as plain torch modules.

This is the G-Net that draws the corpus (`faceattr.data.synth`), rewritten so that S31 (inversion)
and S32 (attribute search) can backpropagate through it. Its weights are read at run time from the
OpenVINO IR files of the installed `random-face` package: the IR keeps most PyTorch parameter
names; the rest (mapping weights, 1x1 convs with their demodulation folded in, baked noise) are
found by their place in the graph. Equalised-LR scales are folded into the IR's mapping weights.

Latent spaces: W, (N, 512), one style for all 23 places that consume it, and W+, (N, 23, 512),
one style per place (the first 3x3 conv, then up / conv1 / conv2 of each of the 7 blocks, then
the image head). Synthesis output: (N, 3, 1024, 1024) RGB in [-1, 1].
"""

import hashlib
import importlib.util
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from faceattr.errors import FaceattrError

PACKAGE = "random_face"
# name -> (bytes, sha256) of random-face==2021.7.21.1, the version `make venv` installs
FILES = {
    "MappingNetwork.xml": (59865, "73e2096cad6e696e4af47df2477e048ab4c42c0e0dec83c7c66604822689e55b"),
    "MappingNetwork.bin": (8405040, "212dd716bdb556e18db603ea97300d4fa3c872b878c726b2402fea80820e7305"),
    "SynthesisNetwork.xml": (425183, "7918fce515243954d3e06628cb39a23902d6b1d5d02932cc0c2faee7a2aeeedd"),
    "SynthesisNetwork.bin": (32025440, "c7da15fa22d508c82e1c30dd6b4cdf67fe3ccdddaf85b310ee764dbf0c289645"),
}
STYLE_DIM = 512
N_STYLES = 23
CHANNELS = (512, 512, 512, 512, 256, 128, 64)  # block outputs at 8, 16, ..., 512 px
RESOLUTION = 1024
# The corpus recipe (docs/DATA.md): z of seed S, and the truncation psi around the mean of MEAN_SAMPLES mapped z
PSI = 0.7
MEAN_SEED = 123456789
MEAN_SAMPLES = 512


def latent(seed: int) -> np.ndarray:
    """The z of one seed, float32 (1, 512)."""
    return np.random.default_rng(seed).normal(size=(1, STYLE_DIM)).astype(np.float32)


def package_data_dir() -> Path:
    """The random_face/data folder, found without importing the package (its __init__ fails on
    current OpenVINO)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FaceattrError("the MobileStyleGAN weights (package random-face) are not installed: run `make venv`")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def weights_folder() -> Path:
    """package_data_dir(), each file checked against FILES (size, then sha256 once per process)."""
    folder = package_data_dir()
    for name, (size, sha) in FILES.items():
        _check_file(folder / name, size, sha)
    return folder


@lru_cache(maxsize=None)
def _hash(path: Path, mtime_ns: int, size: int) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _check_file(path: Path, size: int, sha: str):
    st = path.stat() if path.is_file() else None
    if st is None or st.st_size != size or _hash(path, st.st_mtime_ns, st.st_size) != sha:
        state = "missing" if st is None else "changed"
        raise FaceattrError(f"MobileStyleGAN weights file {path} is {state} (package random-face): run `make venv`")


def read_ir(folder: Path, name: str):
    import openvino as ov  # imported late: only loading needs it

    return ov.Core().read_model(str(folder / f"{name}.xml"), str(folder / f"{name}.bin"))


def _const(port) -> np.ndarray | None:
    """The value feeding an op input, if it is a Constant."""
    node = port.get_source_output().get_node()
    return node.get_data().copy() if node.get_type_name() == "Constant" else None


class MappingNetwork(nn.Module):
    """z (N, 512) -> w (N, 512): PixelNorm, then 8 x (linear, LeakyReLU 0.2, x sqrt 2)."""

    def __init__(self, dim: int = STYLE_DIM, depth: int = 8):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(dim, dim) for _ in range(depth))

    def forward(self, z):
        x = z * torch.rsqrt(z.square().mean(dim=1, keepdim=True) + 1e-8)
        for layer in self.layers:
            x = F.leaky_relu(layer(x), 0.2) * math.sqrt(2)
        return x


class ModulatedConv(nn.Module):
    """Style-modulated conv: x * style -> (depthwise 3x3 then 1x1, or a full 3x3) -> + noise + bias
    -> LeakyReLU 0.2. The style scales the activations, so a batch shares one weight tensor; the
    demodulation and the noise strength are already folded into `weight` and `noise`."""

    def __init__(self, c_in: int, c_out: int, size: int, depthwise: bool = True):
        super().__init__()
        self.modulation = nn.Linear(STYLE_DIM, c_in)
        self.scale = 1 / math.sqrt(c_in * 9)  # equalised LR of the 3x3 kernel, applied to the style
        self.weight_dw = nn.Parameter(torch.zeros(c_in, 1, 3, 3)) if depthwise else None
        self.weight = nn.Parameter(torch.zeros(c_out, c_in, *((1, 1) if depthwise else (3, 3))))
        self.noise = nn.Parameter(torch.zeros(1, 1, size, size))
        self.bias = nn.Parameter(torch.zeros(c_out))

    def forward(self, x, w):
        x = x * (self.modulation(w) * self.scale)[:, :, None, None]
        if self.weight_dw is not None:
            x = F.conv2d(F.conv2d(x, self.weight_dw, padding=1, groups=x.shape[1]), self.weight, self.bias)
        else:
            x = F.conv2d(x, self.weight, self.bias, padding=1)
        return F.leaky_relu(x + self.noise, 0.2)


# 2x2 output block of each wavelet band (low, high0, high1, high2): the IR's Haar synthesis filters
HAAR = 0.5 * torch.tensor([[[1., 1.], [1., 1.]], [[1., 1.], [-1., -1.]],
                          [[1., -1.], [1., -1.]], [[1., -1.], [-1., 1.]]])


def idwt_haar(x):
    """Inverse Haar wavelet step: (N, 4C, H, W) -> (N, C, 2H, 2W).

    The port keeps the 4 bands of each output channel side by side (low, high0, high1, high2), so the
    step is one grouped transposed conv; the mean of each 2x2 output block is low / 2.
    """
    c = x.shape[1] // 4
    return F.conv_transpose2d(x, HAAR.to(x)[:, None].repeat(c, 1, 1, 1), stride=2, groups=c)


def interleave(c: int) -> np.ndarray:
    """Channel order that turns the IR's [low of all C/4, high (C/4 x 3)] into 4-band groups."""
    q = c // 4
    return np.array([g if b == 0 else q + 3 * g + b - 1 for g in range(q) for b in range(4)])


class IDWTUpsample(nn.Module):
    """x * style, read as C/4 groups of 4 wavelet bands -> (N, C/4, 2H, 2W)."""

    def __init__(self, c_in: int):
        super().__init__()
        self.modulation = nn.Linear(STYLE_DIM, c_in)

    def forward(self, x, w):
        return idwt_haar(x * self.modulation(w)[:, :, None, None])


class SynthesisBlock(nn.Module):
    """One block: IDWT upsample (2x) then two modulated depthwise-separable convs; 3 styles."""

    def __init__(self, c_in: int, c_out: int, size: int):
        super().__init__()
        self.up = IDWTUpsample(c_in)
        self.conv1 = ModulatedConv(c_in // 4, c_out, size)
        self.conv2 = ModulatedConv(c_out, c_out, size)

    def forward(self, x, ws):
        return self.conv2(self.conv1(self.up(x, ws[0]), ws[1]), ws[2])


class ToImage(nn.Module):
    """Modulated 1x1 conv to the 12 wavelet channels of the image at half resolution
    (for each of R, G, B: low band, then 3 high bands)."""

    def __init__(self, c_in: int):
        super().__init__()
        self.modulation = nn.Linear(STYLE_DIM, c_in)
        self.scale = 1 / math.sqrt(c_in)
        self.weight = nn.Parameter(torch.zeros(12, c_in, 1, 1))
        self.bias = nn.Parameter(torch.zeros(12))

    def forward(self, x, w):
        x = x * (self.modulation(w) * self.scale)[:, :, None, None]
        return F.conv2d(x, self.weight, self.bias)


def as_wplus(w):
    """W (N, 512) -> a broadcast view (N, 23, 512); W+ passes through, so equal rows give equal images."""
    if w.dim() == 2 and w.shape[1] == STYLE_DIM:
        return w[:, None].expand(-1, N_STYLES, -1)
    if w.dim() == 3 and w.shape[1:] == (N_STYLES, STYLE_DIM):
        return w
    raise FaceattrError(f"a MobileStyleGAN latent is (N, {STYLE_DIM}) or (N, {N_STYLES}, {STYLE_DIM}), "
                        f"got {tuple(w.shape)}")


class SynthesisNetwork(nn.Module):
    """w in W or W+ -> face (N, 3, 1024, 1024) in [-1, 1], or the exact 512 px low band.

    resolution=512 returns the average-pooled 1024 px face without its last wavelet step.
    """

    def __init__(self):
        super().__init__()
        self.input = nn.Parameter(torch.zeros(1, CHANNELS[0], 4, 4))
        self.conv1 = ModulatedConv(CHANNELS[0], CHANNELS[0], 4, depthwise=False)
        c_in, blocks = CHANNELS[0], []
        for i, c_out in enumerate(CHANNELS):
            blocks.append(SynthesisBlock(c_in, c_out, 8 << i))
            c_in = c_out
        self.layers = nn.ModuleList(blocks)
        self.to_img = ToImage(CHANNELS[-1])

    def features(self, w, stop: int = len(CHANNELS), x=None, start: int = 0):
        """Activations after blocks start..stop-1 (block i ends at 8 << i px) from W+ styles (N, 23, 512);
        x holds the activations before block `start` (None: start from the constant input)."""
        if x is None:
            x = self.conv1(self.input.expand(w.shape[0], -1, -1, -1), w[:, 0])
        for i in range(start, stop):
            x = self.layers[i](x, w[:, 1 + 3 * i:4 + 3 * i].unbind(1))
        return x

    def forward(self, w, resolution: int = RESOLUTION):
        if resolution not in (RESOLUTION, RESOLUTION // 2):
            raise FaceattrError(f"MobileStyleGAN synthesis runs at 1024 or 512 px, not {resolution}")
        w = as_wplus(w)
        img = self.to_img(self.features(w), w[:, N_STYLES - 1])
        if resolution == RESOLUTION // 2:
            return img[:, 0::4] * 0.5  # the low band is twice the mean of each 2x2 block
        return idwt_haar(img)


def _mapping_state(model) -> dict:
    """Mapping weights in graph order: each MatMul's constant weight and the Add bias after it."""
    state, layer = {}, 0
    for op in model.get_ordered_ops():
        if op.get_type_name() == "MatMul":
            state[f"layers.{layer}.weight"] = _const(op.input(1))
            add = next(iter(op.output(0).get_target_inputs())).get_node()
            state[f"layers.{layer}.bias"] = _const(add.input(1)).reshape(-1)
            layer += 1
    return state


def _synthesis_state(model) -> dict:
    """Named constants by name ('m.layers.0.conv1.conv.weight_dw' -> 'layers.0.conv1.weight_dw'),
    the unnamed 1x1 / first 3x3 weights and noise by the conv they belong to."""
    state = {}
    for op in model.get_ordered_ops():
        name = op.get_friendly_name()
        if op.get_type_name() == "Constant" and name.startswith("m."):
            key = name[2:].replace(".conv.", ".").replace("layers.6.to_img", "to_img")
            state["input" if key == "input.input" else key] = op.get_data().copy()
        elif op.get_type_name() == "Convolution":
            weight = op.input(1).get_source_output().get_node()
            if weight.get_friendly_name().startswith("m."):
                continue  # the image head: its weight is named
            src = op.input(0).get_source_output().get_node()
            if src.get_type_name() == "GroupConvolution":  # depthwise then 1x1: named by the depthwise weight
                owner = src.input(1).get_source_output().get_node().get_friendly_name()[2:]
                owner = owner.replace(".conv.weight_dw", "")
            else:
                owner = "conv1"
            state[f"{owner}.weight"] = weight.get_data().copy()
            add = next(iter(op.output(0).get_target_inputs())).get_node()
            state[f"{owner}.noise"] = _const(add.input(1))
    c_in = CHANNELS[0]
    for i, c_out in enumerate(CHANNELS):  # what feeds each upsample, and its style, go to 4-band groups
        order = interleave(c_in)
        for key in ("conv1" if i == 0 else f"layers.{i - 1}.conv2", f"layers.{i}.up.modulation"):
            for part in ("weight", "bias"):
                state[f"{key}.{part}"] = state[f"{key}.{part}"].reshape(c_in, -1)[order]
        c_in = c_out
    for part in ("weight", "bias"):
        state[f"to_img.{part}"] = state[f"to_img.{part}"].reshape(12, -1)[interleave(12)]
    return state


def _load(module: nn.Module, arrays: dict, what: str):
    want = module.state_dict()
    if set(arrays) != set(want):
        raise FaceattrError(f"the {what} IR does not have the layout this port expects (package random-face): "
                            f"run `make venv`")
    module.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)).reshape(want[k].shape)
                            for k, v in arrays.items()})
    return module.eval().requires_grad_(False)


@lru_cache(maxsize=1)
def load_networks() -> tuple[MappingNetwork, SynthesisNetwork]:
    """(mapping, synthesis) in eval mode with gradients off, read once per process."""
    folder = weights_folder()
    mapping = _load(MappingNetwork(), _mapping_state(read_ir(folder, "MappingNetwork")), "mapping")
    synthesis = _load(SynthesisNetwork(), _synthesis_state(read_ir(folder, "SynthesisNetwork")), "synthesis")
    return mapping, synthesis.to(memory_format=torch.channels_last)  # oneDNN's convs run faster in NHWC


@lru_cache(maxsize=1)
def _corpus_mean() -> torch.Tensor:
    mapping, _ = load_networks()
    rng = np.random.default_rng(MEAN_SEED)
    z = np.concatenate([rng.normal(size=(1, STYLE_DIM)).astype(np.float32) for _ in range(MEAN_SAMPLES)])
    with torch.no_grad():
        return mapping(torch.from_numpy(z)).mean(dim=0, keepdim=True)


def corpus_mean_style() -> torch.Tensor:
    """The corpus's truncation centre (1, 512): mean mapping output of the recipe's 512 vectors."""
    return _corpus_mean().clone()


def truncated_styles(z, psi: float = PSI) -> torch.Tensor:
    """z (N, 512) -> W styles mean + psi (mapping(z) - mean), the corpus recipe at psi 0.7."""
    mean = _corpus_mean()
    return mean + psi * (load_networks()[0](z) - mean)


def seed_styles(seeds, psi: float = PSI) -> torch.Tensor:
    """The corpus styles (N, 512) of integer seeds (z from default_rng(seed), as the corpus)."""
    return truncated_styles(torch.from_numpy(np.concatenate([latent(int(s)) for s in seeds])), psi)
