"""Can an edit fool E-Net? METHOD.md's known weakness: S32 may find latents whose E-Net score flips
without a visible change. Measured by an independent judge, the labeller E-Net was trained to imitate.
"""

import math

import numpy as np
import torch

from faceattr.edit.search import scores, search
from faceattr.errors import FaceattrError
from faceattr.nets.generator import Generator, PatentGNet
from faceattr.nets.gnet import decode


def patent_gnet(G) -> PatentGNet:
    """The patent G-Net behind `G`: a raw `nets.gnet.Generator` (as `weights.load_generator` gives it) or
    a `nets.generator.PatentGNet`; any other G-Net of the interface is a one-line error (S32 here is the
    patent's per-face gradient in z; MobileStyleGAN's S32 runs along directions, `edit.search.search_along`)."""
    if isinstance(G, PatentGNet):
        return G
    if isinstance(G, Generator):
        raise FaceattrError(f"the fooling measurement runs the patent G-Net's S32, not {G.name}'s")
    return PatentGNet(G)


def default_judge(attr: str):
    """The corpus labeller's rule for `attr` (dlib age/gender, FER smile): faces -> {0, 1} (N,)."""
    from faceattr.data.label import AttributeLabeller

    labeller = AttributeLabeller([attr])
    return lambda images: labeller(images)[0][:, 0]


def fooling_rates(G, E, attr: str, judge=None, n: int = 64, steps: int = 60, lr: float = 0.05,
                  seed: int = 0, pool_factor: int = 4) -> dict:
    """G: the patent G-Net (raw, or as `nets.generator.PatentGNet`; see `patent_gnet`).

    Run a plain S32 search (`edit.search.search`: loss 1/2 (t - s)^2, s = sigmoid(E(G(z)))[attr], Adam on
    z, up to `steps` steps, a face stopping early only at s = 0.999 / 0.001; no prior or identity term)
    on G-Net samples in both directions, and ask `judge` (uint8 faces (N, H, W, 3) -> 0/1 (N,); default
    `default_judge(attr)`) about the results.

    Samples: from `pool_factor * n` latents (seeded), up to n per direction on which E-Net and the
    judge agree about the start (add: both say 0; remove: both say 1).
    -> {"add": r, "remove": r, "all": r}, r = {"n", "e_flip" (E-Net's score crossed 0.5 to the target),
    "confirmed" (E flipped and the judge agrees), "fooled" (E flipped, the judge does not),
    "judge_flip" (the judge sees the target, whatever E says), "fooled_share" (fooled / e_flip)}:
    rates over the n edits of that direction, NaN where n or e_flip is 0.
    """
    G = patent_gnet(G)
    judge = judge or default_judge(attr)
    E = E.judging([attr])
    idx = E.index(attr)
    dev = next(G.parameters()).device
    z = torch.randn(pool_factor * n, G.z_dim, generator=torch.Generator().manual_seed(seed)).to(dev)
    e0 = scores(G, E, z, [idx])[:, 0].cpu().numpy() >= 0.5
    j0 = np.asarray(judge(decode(G, z))).astype(bool)
    counts = {}
    for name, target in (("add", 1), ("remove", 0)):
        source = not target
        pick = np.flatnonzero((e0 == source) & (j0 == source))[:n]
        if not len(pick):
            counts[name] = np.zeros((0, 3), bool)
            continue
        z2, info = search(G, E, z[pick], idx, target, steps=steps, goal=1.0, lr=lr, prior_weight=0.0,
                          identity_weight=0.0)
        e_flip = (info["s_after"][:, 0].numpy() >= 0.5) == bool(target)
        j_flip = np.asarray(judge(decode(G, z2))).astype(bool) == bool(target)
        counts[name] = np.stack([e_flip, e_flip & j_flip, j_flip], 1)
    counts["all"] = np.concatenate([counts["add"], counts["remove"]])
    return {k: _rates(v) for k, v in counts.items()}


def _rates(c: np.ndarray) -> dict:
    n, (e_flip, confirmed, j_flip) = len(c), c.sum(0) if len(c) else (0, 0, 0)

    def rate(a, b):
        return float(a / b) if b else math.nan

    return {"n": n, "e_flip": rate(e_flip, n), "confirmed": rate(confirmed, n), "fooled": rate(e_flip - confirmed, n),
            "judge_flip": rate(j_flip, n), "fooled_share": rate(e_flip - confirmed, e_flip)}
