"""`faceattr train directions`: S32's attribute directions in MobileStyleGAN's W, from E-Net's verdicts.

A corpus drawn by `faceattr data synth` names each face by its seed, so its latent is known exactly
(w = mean + psi (mapping(z) - mean), nets.stylegan). E-Net reads every face (as in S21's data: the
64 px Lanczos-resized corpus image); for each attribute a logistic regression of its verdict on w
(L2-regularised, fitted by L-BFGS) gives the direction, its normal. A held-out share of the faces
measures how well a straight line in W separates what E-Net sees.
"""

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from faceattr import weights
from faceattr.data.images import load_rgb
from faceattr.errors import FaceattrError
from faceattr.fileio import write_text
from faceattr.imaging import to_float
from faceattr.nets.directions import Directions
from faceattr.nets.generator import MobileStyleGAN

SEED_NAME = re.compile(r"^(\d{1,6})\.(jpg|png)$")


@dataclass
class DirectionsConfig:
    data: str  # a corpus made by `faceattr data synth` (CelebA layout, files named by seed)
    out: str  # the .safetensors to write (a model card .md beside it)
    enet: str = ""  # the E-Net whose verdicts are pooled ("": the shipped one)
    n: int = 6000  # faces read (the first n seeds of the corpus)
    l2: float = 1e-3
    holdout: float = 0.2


def corpus_files(root, n: int) -> dict[int, Path]:
    """The first `n` faces of a corpus drawn by `faceattr data synth`: {seed: file}, in seed order."""
    folder = Path(root) / "img_align_celeba"
    if not folder.is_dir():
        raise FaceattrError(f"{root} has no img_align_celeba/ folder: make one with `faceattr data synth`")
    files = sorted((int(m[1]), p) for p in folder.iterdir() if (m := SEED_NAME.match(p.name)))
    if len(files) < 100:
        raise FaceattrError(f"{folder} holds {len(files)} faces named by seed; directions need at least 100 "
                            f"from `faceattr data synth`")
    return dict(files[:n])


def fit_direction(w: torch.Tensor, y: torch.Tensor, l2: float) -> tuple[torch.Tensor, float]:
    """Logistic regression y ~ sigmoid(w . beta + b) -> (beta (dim,), b)."""
    beta = torch.zeros(w.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([beta, bias], max_iter=500, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(w @ beta + bias, y) + l2 * beta.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return beta.detach(), float(bias.detach())


def fit(latents: torch.Tensor, verdicts: torch.Tensor, attr_names, l2: float, holdout: float):
    """latents (N, dim) centred on the mean style, verdicts (N, A) 0/1 -> (Directions, held-out accuracy
    per attribute); the directions carry the latents' covariance (S32's unit of step)."""
    n_fit = int(len(latents) * (1 - holdout))
    w = latents.double()
    d = Directions(attr_names, latents.shape[1])
    d.covariance.copy_(torch.cov(w.T).float())
    accuracy = {}
    for i, name in enumerate(attr_names):
        y = verdicts[:, i].double()
        beta, bias = fit_direction(w[:n_fit], y[:n_fit], l2)
        held = ((w[n_fit:] @ beta + bias > 0).double() == y[n_fit:]).double().mean()
        accuracy[name] = round(float(held), 4)
        d.vectors[i] = (beta / beta.norm()).float()
    return d, accuracy


def spread(d: Directions) -> dict[str, float]:
    """The length of each attribute's move (`Directions.split`): the corpus's standard deviation along it."""
    return {a: round(float(d.split([a], [])[0].norm()), 3) for a in d.attr_names}


def train(cfg: DirectionsConfig) -> Path:
    if not 0 < cfg.holdout < 1 or cfg.n < 100 or cfg.l2 < 0:
        raise FaceattrError("directions need --n >= 100, 0 < --holdout < 1 and --l2 >= 0")
    files = corpus_files(cfg.data, cfg.n)
    seeds = list(files)
    E = weights.load_classifier(cfg.enet or None)
    G = MobileStyleGAN()
    w = G.sample_latents(seeds) - G.mean_latent()
    verdicts = []
    with torch.no_grad():
        for i in range(0, len(seeds), 256):
            faces = np.stack([load_rgb(files[s], E.resolution) for s in seeds[i:i + 256]])
            verdicts.append((E(to_float(faces)) > 0).float())
    d, accuracy = fit(w, torch.cat(verdicts), E.attr_names, cfg.l2, cfg.holdout)
    card = {"what": "S32 attribute directions in MobileStyleGAN's W (unit normals of logistic regressions "
                    "of E-Net's verdicts on corpus latents) and the latents' covariance",
            "data": f"{len(seeds)} faces of {cfg.data} (seeds {seeds[0]}-{seeds[-1]}), latents from their seeds",
            "enet": cfg.enet or "shipped", "l2": cfg.l2,
            "held-out accuracy": f"{accuracy} on the last {cfg.holdout:.0%} of the faces",
            "spread": f"{spread(d)}: the corpus latents' standard deviation along each attribute's move, in W "
                      "units (S32's unit of step)",
            "command": f"faceattr train directions --data {cfg.data} --out {cfg.out} --n {cfg.n}"}
    weights.save(d, cfg.out, "directions", d.net_config(), half=False, card=card)
    write_text(Path(cfg.out).with_suffix(".md"), "# S32 attribute directions (MobileStyleGAN W)\n\n"
               + "".join(f"- {k}: {v}\n" for k, v in card.items()))
    return Path(cfg.out)
