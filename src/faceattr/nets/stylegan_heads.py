"""Early exits of MobileStyleGAN: cheap approximate faces at 64, 128 and 256 px for S31 and S32.

The network draws its image only at the end (a 512 px wavelet image, stepped up to 1024 px), so the
exact 256, 128 or 64 px face (the 1024 px face box-filtered) costs the whole network. An early exit
stops after the block that works at that resolution and maps its activations to RGB with a
linear head (a 1x1 conv), fitted by least squares (the exact minimiser of the pixel MSE) on faces
the network draws, against their box-filtered 1024 px faces. `train` makes the shipped heads,
`src/faceattr/weights/stylegan_heads.safetensors`, and its model card.
"""

import json
import time
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from faceattr.errors import FaceattrError
from faceattr.nets import stylegan

EXIT_BLOCKS = {64: 4, 128: 5, 256: 6}  # working resolution -> blocks run (block outputs: 8 << i px)
RIDGE = 1e-5  # relative to the mean feature energy: keeps the normal equations well posed


def heads_path() -> Path:
    return Path(str(resources.files("faceattr") / "weights" / "stylegan_heads.safetensors"))


def new_head(resolution: int) -> nn.Conv2d:
    return nn.Conv2d(stylegan.CHANNELS[EXIT_BLOCKS[resolution] - 1], 3, 1)


def early_face(synthesis: stylegan.SynthesisNetwork, head: nn.Module, w, resolution: int):
    """W or W+ -> approximate face (N, 3, r, r) at r = 64, 128 or 256 from the blocks up to r."""
    return head(synthesis.features(stylegan.as_wplus(w), EXIT_BLOCKS[resolution]))


def _blocks_and_faces(synthesis, w):
    """Activations after each exit block, and the exact faces at each exit resolution."""
    w = stylegan.as_wplus(w)
    feats, x, done = {}, None, 0
    for r, n in sorted(EXIT_BLOCKS.items()):
        x = feats[r] = synthesis.features(w, n, x, done)
        done = n
    x = synthesis.features(w, len(stylegan.CHANNELS), x, done)
    low = synthesis.to_img(x, w[:, stylegan.N_STYLES - 1])[:, 0::4] * 0.5  # the 512 px face, exactly
    return feats, {r: F.avg_pool2d(low, 512 // r) for r in EXIT_BLOCKS}


def _rows(x):
    """(N, C, H, W) -> pixels as rows (N*H*W, C + 1) with a constant column for the bias."""
    rows = x.permute(0, 2, 3, 1).reshape(-1, x.shape[1]).double()
    return torch.cat([rows, torch.ones(len(rows), 1, dtype=rows.dtype)], 1)


def psnr(a, b) -> float:
    """PSNR in dB of images in [-1, 1] (peak-to-peak 2)."""
    return float(10 * torch.log10(4 / (a - b).square().mean()))


@torch.no_grad()
def fit(seeds) -> dict[int, nn.Conv2d]:
    """Least-squares heads from the corpus faces of `seeds` (psi 0.7, as the corpus)."""
    _, synthesis = stylegan.load_networks()
    normal = {r: [0, 0] for r in EXIT_BLOCKS}
    for seed in seeds:
        feats, faces = _blocks_and_faces(synthesis, stylegan.seed_styles([seed]))
        for r in EXIT_BLOCKS:
            x, y = _rows(feats[r]), faces[r].permute(0, 2, 3, 1).reshape(-1, 3).double()
            normal[r][0] = normal[r][0] + x.T @ x
            normal[r][1] = normal[r][1] + x.T @ y
    heads = {}
    for r, (xtx, xty) in normal.items():
        ridge = RIDGE * xtx.diagonal().mean() * torch.eye(len(xtx), dtype=xtx.dtype)
        solution = torch.linalg.solve(xtx + ridge, xty).float()  # (C + 1, 3)
        head = new_head(r)
        head.weight.copy_(solution[:-1].T[:, :, None, None])
        head.bias.copy_(solution[-1])
        heads[r] = head.eval().requires_grad_(False)
    return heads


@torch.no_grad()
def evaluate(heads: dict, seeds) -> dict[int, list[float]]:
    """PSNR of each head's face against the exact (box-filtered) face, per seed."""
    _, synthesis = stylegan.load_networks()
    scores = {r: [] for r in heads}
    for seed in seeds:
        feats, faces = _blocks_and_faces(synthesis, stylegan.seed_styles([seed]))
        for r, head in heads.items():
            scores[r].append(psnr(head(feats[r]), faces[r]))
    return scores


def save(heads: dict, path, card: dict):
    tensors = {f"{r}.{k}": v.half().contiguous() for r, head in heads.items() for k, v in head.state_dict().items()}
    save_file(tensors, str(path), metadata={"kind": "stylegan_heads", "card": json.dumps(card)})


def load(path=None) -> dict[int, nn.Conv2d]:
    """The shipped heads (or those in `path`), in float32, eval mode, gradients off."""
    path = Path(path) if path else heads_path()
    if not path.is_file():
        raise FaceattrError(f"MobileStyleGAN early-exit heads {path} are missing: reinstall faceattr")
    state = load_file(str(path))
    heads = {}
    for r in EXIT_BLOCKS:
        head = new_head(r)
        head.load_state_dict({k: state[f"{r}.{k}"].float() for k in ("weight", "bias")})
        heads[r] = head.eval().requires_grad_(False)
    return heads


def train(train_seeds, test_seeds, out=None) -> dict:
    """Fit, round to fp16 as shipped, evaluate on held-out seeds, write the heads and their model card."""
    start = time.perf_counter()
    out = Path(out) if out else heads_path()
    heads = fit(train_seeds)
    with torch.no_grad():
        for p in (p for head in heads.values() for p in head.parameters()):
            p.copy_(p.half().float())  # evaluate exactly what is shipped
    scores = evaluate(heads, test_seeds)
    card = {"train_seeds": f"{train_seeds[0]}-{train_seeds[-1]}", "test_seeds": f"{test_seeds[0]}-{test_seeds[-1]}",
            "psi": stylegan.PSI, "ridge": RIDGE, "exit_blocks": EXIT_BLOCKS,
            "psnr_db": {r: {"mean": round(float(np.mean(v)), 2), "min": round(float(np.min(v)), 2),
                            "max": round(float(np.max(v)), 2)} for r, v in scores.items()},
            "seconds": round(time.perf_counter() - start)}
    save(heads, out, card)
    out.with_suffix(".md").write_text(model_card(card))
    return card


def model_card(card: dict) -> str:
    rows = "\n".join(f"| {r} px | after {EXIT_BLOCKS[r]} blocks ({stylegan.CHANNELS[EXIT_BLOCKS[r] - 1]} channels) | "
                     f"{p['mean']:.2f} | {p['min']:.2f} | {p['max']:.2f} |" for r, p in card["psnr_db"].items())
    return f"""# stylegan_heads: early exits of MobileStyleGAN

Linear 1x1 heads (fp16) from the activations of one MobileStyleGAN block to an RGB face at the
same resolution, so S31 (inversion) and S32 (attribute search) can run at 64, 128 or 256 px without
the 512 px blocks (`faceattr.nets.stylegan_heads`). The exact face at those resolutions is the
1024 px face box-filtered; the heads approximate it.

- Data: the corpus faces (psi {card['psi']}) of seeds {card['train_seeds']} (fit) and
  {card['test_seeds']} (held out); none is a corpus seed (0-59097).
- Fit: least squares with a ridge of {card['ridge']} x the mean feature energy, in float64, then
  rounded to fp16; {card['seconds']} s on 2 CPU cores shared with other jobs.
- Command: `.venv/bin/python -c "from faceattr.nets.stylegan_heads import train;
  train(range(100000, 100192), range(200000, 200032))"`

PSNR (dB, [-1, 1] images, peak-to-peak 2) on the held-out seeds, fp16 heads:

| resolution | features | mean | min | max |
|---|---|---|---|---|
{rows}
"""
