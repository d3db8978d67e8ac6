"""E-Net, the patent's attribute judge (S21-S23 train it; S32 steers edits by its gradient).

One compact CNN trunk with one logit per attribute (a single `--attr` makes it the patent's
one-attribute binary classifier). Built for a useful input gradient, since S32 follows it:
- SiLU activations and binomial-blur downsampling, no ReLU/max-pool: the gradient w.r.t. the
  image is smooth and anti-aliased, not the high-frequency pattern that lets an edit fool E-Net
  without a visible change;
- GroupNorm: a face's score never depends on the rest of its batch, in training or eval.
Input (B, 3, R, R) in [-1, 1] at the G-Net resolution; output logits (B, A) in `attr_names` order.
"""

import torch
import torch.nn.functional as F
from torch import nn

from faceattr.errors import FaceattrError
from faceattr.nets.gnet import channels_at

ENET_KEYS = ("attr_names", "resolution", "width")


class BlurDown(nn.Module):
    """2x downsampling through a [1, 2, 1]^2 / 16 binomial filter (anti-aliased; BlurPool, Zhang 2019)."""

    def __init__(self):
        super().__init__()
        k = torch.tensor([1.0, 2.0, 1.0])
        self.register_buffer("kernel", (k[:, None] * k[None, :] / 16)[None, None], persistent=False)

    def forward(self, x):
        c = x.shape[1]
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), self.kernel.expand(c, 1, 3, 3), stride=2, groups=c)


def _conv(c_in, c_out):
    return [nn.Conv2d(c_in, c_out, 3, 1, 1), nn.GroupNorm(8, c_out), nn.SiLU()]


class ENet(nn.Module):
    """E-Net: image (B, 3, R, R) in [-1, 1] -> attribute logits (B, len(attr_names))."""

    def __init__(self, attr_names, resolution: int = 64, width: int = 1024):
        super().__init__()
        if resolution < 8 or resolution & (resolution - 1):
            raise ValueError(f"resolution must be a power of two >= 8, got {resolution}")
        if not attr_names:
            raise ValueError("E-Net needs at least one attribute")
        self.attr_names, self.resolution, self.width = list(attr_names), resolution, width
        c = channels_at(resolution, width)
        layers, res = _conv(3, c), resolution
        while res > 4:
            res //= 2
            c_out = channels_at(res, width)
            layers += [*_conv(c, c), BlurDown(), *_conv(c, c_out)]
            c = c_out
        self.trunk = nn.Sequential(*layers)
        self.heads = nn.Linear(c, len(self.attr_names))  # row i: attribute i's own logit head

    def forward(self, x):
        """Training: one pass (random flips are part of the augmentation). Eval, as in S32: the mean
        of the face's and its mirror image's logits, so the score and its gradient are left-right
        symmetric (and a little more accurate: +0.3 points Male on the test split)."""
        if x.shape[-2:] != (self.resolution, self.resolution):
            raise ValueError(f"E-Net takes {self.resolution}x{self.resolution} faces, got {tuple(x.shape[-2:])}")
        if self.training:
            return self.heads(self.trunk(x).mean(dim=(2, 3)))
        return self.heads(self.trunk(torch.cat([x, x.flip(3)])).mean(dim=(2, 3))).unflatten(0, (2, -1)).mean(0)

    def index(self, attr: str) -> int:
        if attr not in self.attr_names:
            raise FaceattrError(f"this E-Net judges {', '.join(self.attr_names)}, not {attr!r}")
        return self.attr_names.index(attr)

    def score(self, x, attr: str):
        """s of S32: P(attribute) for each image, (B,)."""
        return torch.sigmoid(self(x)[:, self.index(attr)])

    def judging(self, attrs) -> "ENet":
        """The net that judges `attrs`: one ENet judges all its attributes in one pass."""
        return self

    def net_config(self) -> dict:
        return {k: getattr(self, k) for k in ENET_KEYS}


class ENetGroup(nn.Module):
    """Several E-Nets judged as one: logits (B, A) in `attr_names` order, as from one ENet. The patent trains
    a classifier per attribute (S21-S23), and a net that judges one attribute alone can judge it better
    than a trunk shared by all (README: enetM1-enetM3). `nets`: ENets, or their net_config()s."""

    def __init__(self, nets):
        super().__init__()
        self.nets = nn.ModuleList(n if isinstance(n, ENet) else ENet(**n) for n in nets)
        self.attr_names = [a for n in self.nets for a in n.attr_names]
        distinct = len(set(self.attr_names)) == len(self.attr_names)
        if not self.nets or len({n.resolution for n in self.nets}) > 1 or not distinct:
            raise FaceattrError("an E-Net group needs E-Nets of one resolution that judge different attributes")
        self.resolution = self.nets[0].resolution

    def forward(self, x):
        return torch.cat([n(x) for n in self.nets], dim=1)

    index, score = ENet.index, ENet.score

    def judging(self, attrs):
        """Only the members that judge `attrs` (one member as itself), sharing their weights: S32 and the
        gain search call E-Net at every step, and a Male edit need not pay for the Young net too."""
        for a in attrs:
            self.index(a)  # an attribute no member judges: index's one-line error, not an empty group's
        nets = [n for n in self.nets if set(n.attr_names) & set(attrs)]
        return nets[0] if len(nets) == 1 else ENetGroup(nets)

    def net_config(self) -> dict:
        return {"nets": [n.net_config() for n in self.nets]}


def enet_from_config(**config):
    return ENetGroup(**config) if "nets" in config else ENet(**config)


@torch.no_grad()
def widen(e: ENet, width: int, generator: torch.Generator | None = None) -> ENet:
    """A copy of `e` at a larger `width` that computes the same logits (Net2WiderNet, Chen et al. 2016),
    so a trained E-Net can grow instead of starting again. Each channel becomes r adjacent copies: the
    copies of one GroupNorm group stay in one group, so its statistics do not change. A copy's outgoing
    weights are a random share of the original's (shares sum to 1): the function is unchanged while
    the copies get different gradients and can learn different features."""
    wide = ENet(e.attr_names, e.resolution, width)
    r_in = 1
    for old, new in zip([*e.trunk, e.heads], [*wide.trunk, wide.heads]):
        if not isinstance(old, (nn.Conv2d, nn.GroupNorm, nn.Linear)):
            continue
        w_old = old.weight
        if isinstance(old, nn.GroupNorm):  # normalises the copies the conv before it made
            new.weight.copy_(w_old.repeat_interleave(r_in)), new.bias.copy_(old.bias.repeat_interleave(r_in))
            continue
        r_out = 1 if isinstance(old, nn.Linear) else new.weight.shape[0] // w_old.shape[0]
        if new.weight.shape[0] != r_out * w_old.shape[0] or new.weight.shape[1] != r_in * w_old.shape[1]:
            raise FaceattrError(f"cannot widen E-Net width {e.width} to {width}: channel counts are not multiples")
        share = 1 / r_in + torch.randn(w_old.shape[0], w_old.shape[1], r_in, generator=generator) * 0.25 / r_in
        share += 1 / r_in - share.mean(dim=2, keepdim=True)  # shares of each original weight sum to 1
        w = w_old.unsqueeze(2) * share.view(*share.shape, *[1] * (w_old.dim() - 2))  # (out, in, r_in, kernel...)
        new.weight.copy_(w.flatten(1, 2).repeat_interleave(r_out, dim=0))
        new.bias.copy_(old.bias.repeat_interleave(r_out))
        r_in = r_out
    return wide


@torch.no_grad()
def select_heads(e: ENet, attrs) -> ENet:
    """A copy of `e` that judges only `attrs` (a subset of its attributes, in this order): same trunk,
    those heads' rows."""
    rows = [e.index(a) for a in attrs]
    out = ENet(attrs, e.resolution, e.width)
    out.trunk.load_state_dict(e.trunk.state_dict())
    out.heads.weight.copy_(e.heads.weight[rows]), out.heads.bias.copy_(e.heads.bias[rows])
    return out
