"""Attribute directions in a G-Net's latent space: S32's guide on MobileStyleGAN.

One unit vector per attribute, the normal of a logistic regression of E-Net's verdict on the latents
of corpus faces (`faceattr train directions`): E-Net's evidence pooled over thousands of faces, where
its gradient on one face finds side cues (docs/EXPERIMENTS.md). `split` makes the edited attributes'
directions orthogonal to the others', so a step along them leaves the others' linear readings as
they were, and hands back the others' directions, along which S32 may correct them (its hold term).
Both come scaled to the corpus's spread along them, so S32's steps are in standard deviations of the
faces G-Net draws: the corpus varies half as much along Young as along Male, and one reach in W units
aged faces far past what it took to change their gender (docs/EXPERIMENTS.md).
"""

import torch
from torch import nn

from faceattr.errors import FaceattrError


class Directions(nn.Module):
    """`vectors` (A, dim): unit directions in the latent space of the G-Net named `gnet`, one per attribute;
    `covariance` (dim, dim): of the corpus latents they were fitted on (identity: steps in latent units)."""

    def __init__(self, attr_names, dim: int = 512, gnet: str = "mobilestylegan"):
        super().__init__()
        if not attr_names:
            raise ValueError("directions need at least one attribute")
        self.attr_names, self.dim, self.gnet = list(attr_names), dim, gnet
        self.register_buffer("vectors", torch.zeros(len(self.attr_names), dim))
        self.register_buffer("covariance", torch.eye(dim))

    def net_config(self) -> dict:
        return {"attr_names": self.attr_names, "dim": self.dim, "gnet": self.gnet}

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        if strict and "covariance" not in state_dict:  # files of the W-unit steps: their reach would change
            raise RuntimeError("no corpus covariance: made before S32 stepped in corpus standard deviations; "
                               "rerun `faceattr train directions`")
        return super().load_state_dict(state_dict, strict, assign)

    def split(self, edited, held) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (moves (len(edited), dim): each edited attribute's direction made orthogonal to every other
        attribute's; holds (len(held), dim): the `held` attributes' own directions, in that order), each
        as long as one standard deviation of the corpus latents along it."""
        unknown = [a for a in [*edited, *held] if a not in self.attr_names]
        if unknown:
            raise FaceattrError(f"the directions cover {', '.join(self.attr_names)}, not {', '.join(unknown)}")
        v = self.vectors.float()
        moves = []
        for a in edited:
            others = v[[i for i, n in enumerate(self.attr_names) if n != a]]
            d = v[self.attr_names.index(a)]
            if len(others):
                q, _ = torch.linalg.qr(others.T)
                d = d - q @ (q.T @ d)
            moves.append(d / d.norm())
        return self._spread(torch.stack(moves)), self._spread(v[[self.attr_names.index(a) for a in held]])

    def _spread(self, units):
        """Unit rows -> the same rows scaled to the corpus's standard deviation along each."""
        sd = (units @ self.covariance.float() * units).sum(1, keepdim=True).clamp_min(0).sqrt()
        return units * sd
