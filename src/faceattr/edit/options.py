"""Every option of an edit, with its one name, one default and its range: the CLI (`faceattr edit`),
the Python API (`Editor`) and the server (`faceattr serve`) all pass an `EditOptions`, so a value is
checked once, here, and refused the same way everywhere (FaceattrError, one line).

Defaults marked "per G-Net" are None here and mean the measured default of the G-Net in use
(`STYLEGAN_DEFAULTS`, `PATENT_DEFAULTS`; docs/EXPERIMENTS.md gives the measurements behind them).
"""

import dataclasses
import math
from dataclasses import dataclass, field

from faceattr.errors import FaceattrError

MAX_STRENGTH = 2.0

# name -> (low, high, inclusive low) for every numeric option
RANGES = {
    "strength": (0.0, MAX_STRENGTH, True),
    "invert_steps": (0, 2000, True),
    "invert_lr": (0.0, 10.0, False),
    "restarts": (1, 16, True),
    "tune_steps": (0, 2000, True),
    "tune_lr": (0.0, 1.0, False),
    "tune_locality": (0.0, 100.0, True),
    "search_steps": (0, 500, True),
    "search_goal": (0.5, 1.0, False),
    "search_lr": (0.0, 10.0, False),
    "max_distance": (0.0, 50.0, False),
    "identity_weight": (0.0, 100.0, True),
    "prior_weight": (0.0, 100.0, True),
    "feature_weight": (0.0, 100.0, True),
    "result_goal": (0.5, 1.0, False),
    "blur": (0.0, 16.0, True),
    "redraw": (0.0, 2.0, True),
    "feather": (0.0, 0.5, True),
}
MASKS = ("face", "head")


def option(default, help: str, choices=None):
    return field(default=default, metadata={"help": help} if choices is None else {"help": help, "choices": choices})


@dataclass(frozen=True)
class EditOptions:
    """How an edit runs. Every field is also a `faceattr edit` flag (--invert-steps ...), its help the text here."""

    strength: float = option(1.0, "0: unchanged, 1: to the goal, up to 2: past it")
    all_faces: bool = option(False, "every face, not only the largest (the portrait's subject)")
    mask: str = option("head", "S33: the region pasted back ('face': brows to chin; 'head': with hair and neck)",
                       MASKS)
    feather: float = option(0.12, "S33: width of the mask's soft edge, share of the crop side")
    invert_steps: int | None = option(None, "S31 steps (per G-Net)")
    invert_lr: float | None = option(None, "S31 Adam step (per G-Net)")
    restarts: int = option(1, "S31 starts per face; the best is kept")
    tune_steps: int | None = option(None, "S31 steps fitting G-Net's own weights to each face around its latent "
                                          "(pivotal tuning: the inversion becomes the person; 0: off) (per G-Net)")
    tune_lr: float = option(0.003, "S31 Adam step of that tuning, relative to each weight tensor's RMS")
    tune_locality: float = option(0.3, "S31: weight of keeping the tuned G-Net drawing other latents as before "
                                       "(PTI's locality term: keeps the edits; 0: off)")
    search_steps: int | None = option(None, "S32 steps at most (per G-Net)")
    search_goal: float | None = option(None, "S32 stops once E-Net's s passes it (1 - it to remove) (per G-Net)")
    search_lr: float | None = option(None, "S32 Adam step (per G-Net)")
    hold: bool = option(True, "S32 (MobileStyleGAN): keeps the attributes not edited at their E-Net scores")
    max_distance: float = option(5.0, "S32 (MobileStyleGAN): farthest step along a direction, in standard "
                                      "deviations of the corpus faces' latents along it")
    identity_weight: float = option(1.0, "S32 (patent G-Net): weight of staying close to G(z1)")
    prior_weight: float = option(0.1, "S31 and S32 (patent G-Net): keeps z on the prior's shell")
    feature_weight: float = option(0.0, "S31 (patent G-Net): weight of the D-Net feature loss (needs `features`)")
    features: str | None = option(None, "S31 (patent G-Net): a GAN run's checkpoint.pt for that feature loss")
    redraw: float = option(0.0, "S33: where the change G(z2) - G(z1) passes about this (on a -1..1 scale), the "
                                "face is redrawn as G(z2) instead of photo plus change, so the photo's moved "
                                "edges do not ghost; 0: off")
    replace: bool = option(False, "S33: paste G(z2) itself (the patent's S33) instead of adding G(z2) - G(z1)")
    gain: float | None = option(None, "S33 (patent G-Net): multiplies the change; None: per face (auto)")
    result_goal: float = option(0.998, "S33 (patent G-Net): the auto gain's goal for E-Net on the result")
    blur: float = option(1.0, "S33 (patent G-Net): low-pass of the change, sigma in G-Net pixels")
    bf16: bool | None = option(None, "S31 and S32 (patent G-Net) in bf16 autocast; None: where it is native")

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in RANGES and value is not None:
                check_number(f.name, value, *RANGES[f.name])
        if self.mask not in MASKS:
            raise FaceattrError(f"mask must be one of {', '.join(MASKS)}, not {self.mask!r}")
        if self.gain is not None:
            check_number("gain", self.gain, 0.0, 20.0, False)

    def resolved(self, defaults: dict) -> "EditOptions":
        """These options with every None that `defaults` names filled from it (a G-Net's defaults)."""
        return dataclasses.replace(self, **{k: v for k, v in defaults.items() if getattr(self, k) is None})

    def updated(self, **changes) -> "EditOptions":
        """A copy with `changes`; an unknown name is a one-line error listing the valid ones."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise FaceattrError(f"unknown edit option(s) {', '.join(unknown)}; valid: {', '.join(sorted(names))}")
        return dataclasses.replace(self, **changes)


# Measured defaults per G-Net (docs/EXPERIMENTS.md).
STYLEGAN_DEFAULTS = {"invert_steps": 0, "invert_lr": 0.03, "tune_steps": 36, "search_steps": 12,
                     "search_goal": 0.9999, "search_lr": 0.5}
PATENT_DEFAULTS = {"invert_steps": 200, "invert_lr": 0.2, "tune_steps": 0, "search_steps": 40, "search_goal": 0.995,
                   "search_lr": 0.05}


def check_number(name: str, value, low, high, inclusive_low: bool = True):
    """A finite number in [low, high] (or (low, high]), of an int option an int; else a one-line error."""
    integer = isinstance(low, int) and isinstance(high, int)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FaceattrError(f"{name} must be {'an integer' if integer else 'a number'}, not {value!r}")
    if not math.isfinite(value) or value > high or value < low or (value == low and not inclusive_low):
        bracket = "[" if inclusive_low else "("
        raise FaceattrError(f"{name} must lie in {bracket}{low}, {high}], not {value}")
    if integer and not float(value).is_integer():
        raise FaceattrError(f"{name} must be an integer, not {value!r}")


def parse_edits(items, names=None) -> dict[str, int]:
    """['Male=0', 'Young=1,Smiling=0'] (or ('Male', 0) pairs) -> {'Male': 0, 'Young': 1, 'Smiling': 0}; an attribute
    not in `names` (None: any name, checked later by the editor), a target other than 0/1 and an attribute named
    twice are one-line errors."""
    pairs = []
    for item in items:
        if isinstance(item, tuple):
            pairs.append(item)
        else:
            pairs += [part.partition("=")[::2] for part in str(item).split(",") if part.strip()]
    edits = {}
    for name, value in pairs:
        name, value = str(name).strip(), str(value).strip()
        if names is not None and name not in names:
            raise FaceattrError(f"unknown attribute {name!r}; available: {', '.join(names)}")
        if value not in ("0", "1"):
            raise FaceattrError(f"attribute {name}: the target must be 0 (remove) or 1 (add), not {value!r}")
        if name in edits:
            raise FaceattrError(f"attribute {name} is given twice: name each attribute once")
        edits[name] = int(value)
    if not edits:
        raise FaceattrError(f"no attribute to change; available: {', '.join(names or ())}")
    return edits
