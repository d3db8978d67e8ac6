"""The training configs: plain dataclasses, one CLI option per field. Light (no torch), so that the CLI
can build its parser without importing the trainers; `check` turns a bad number into one line."""

import math
from dataclasses import dataclass, fields

from faceattr.errors import FaceattrError

DEVICES = ("auto", "cpu", "cuda")


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_numbers(cfg, positive=(), at_least_0=(), at_least_1=()):
    """FaceattrError naming the first option out of its range (NaN is never in range)."""
    for names, ok, want in ((positive, lambda v: v > 0, "> 0"), (at_least_0, lambda v: v >= 0, ">= 0"),
                            (at_least_1, lambda v: v >= 1, ">= 1")):
        for name in names:
            v = getattr(cfg, name)
            if not (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and ok(v)):
                raise FaceattrError(f"{flag(name)} must be a number {want}, not {v!r}")
    if getattr(cfg, "device", "auto") not in DEVICES:
        raise FaceattrError(f"--device must be one of {', '.join(DEVICES)}, not {cfg.device!r}")


def defaults(cls) -> dict:
    return {f.name: f.default for f in fields(cls)}


@dataclass
class GanConfig:
    data: str
    out: str
    resolution: int = 64
    z_dim: int = 128
    width: int = 2048  # channels = width / resolution, capped at 512
    batch: int = 64  # global: split across torchrun processes
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    loss: str = "bce"  # "bce" (the patent's labels 1/0) or "hinge"
    spectral: bool = True
    r1_gamma: float = 0.0  # 0 disables the R1 penalty on real faces
    r1_every: int = 16
    ema_kimg: float = 10.0  # half-life of G's weight average, in thousands of images
    augment: str = "translation,color"  # DiffAugment policies; "" disables
    bf16: bool = True
    channels_last: bool = True
    max_kimg: float = 2000.0
    max_minutes: float = 0.0  # 0 = no time budget
    patience: int = 0  # stop after this many checkpoints without a better FD-SFace; 0 = never
    ckpt_kimg: float = 20.0  # checkpoint (and evaluate) every this many thousand images
    eval_n: int = 500  # samples for the checkpoint figures; 0 skips realism figures
    seed: int = 0
    device: str = "auto"  # auto (a GPU if there is one), cpu or cuda

    def check(self):
        check_numbers(self, positive=("lr_g", "lr_d", "max_kimg", "ckpt_kimg"),
                      at_least_0=("beta1", "r1_gamma", "ema_kimg", "max_minutes", "patience", "eval_n", "seed"),
                      at_least_1=("z_dim", "width", "batch", "r1_every"))
        if self.resolution < 8 or self.resolution & (self.resolution - 1):
            raise FaceattrError(f"--resolution must be a power of two >= 8, not {self.resolution}")
        if self.beta1 >= 1:
            raise FaceattrError(f"--beta1 must be below 1, not {self.beta1}")
        if self.loss not in ("bce", "hinge"):
            raise FaceattrError(f"unknown loss {self.loss!r}: use bce or hinge")


@dataclass
class EncoderConfig:
    gnet: str
    out: str
    data: str = ""  # optional corpus: also report reconstruction PSNR on its real validation faces
    width: int = 2048  # channels = width / resolution, capped at 512 (as D-Net)
    batch: int = 32
    lr: float = 2e-4
    rec_weight: float = 1.0
    bf16: bool = True
    max_kimg: float = 200.0
    max_minutes: float = 0.0  # 0 = no time budget
    ckpt_kimg: float = 5.0
    eval_n: int = 128
    seed: int = 0
    device: str = "auto"  # auto (a GPU if there is one), cpu or cuda

    def check(self):
        check_numbers(self, positive=("lr", "max_kimg", "ckpt_kimg"), at_least_0=("rec_weight", "max_minutes", "seed"),
                      at_least_1=("width", "batch", "eval_n"))


@dataclass
class ClassifierConfig:
    data: str
    out: str
    attrs: tuple = ()  # attribute names; empty = every attribute of the corpus
    resolution: int = 64  # the G-Net's
    width: int = 1024  # channels = width / resolution, capped at 512
    batch: int = 128  # global: split across torchrun processes
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str = "cosine"  # "cosine" (to 0 at max_epochs) or "step" (x step_gamma every step_epochs)
    step_epochs: int = 10
    step_gamma: float = 0.1
    pos_weight: bool = False  # weight positives by negatives/positives of the training split
    soft_labels: bool = False  # train on the labeller's probabilities (ROOT/labels_raw.csv), not its 0/1 labels
    init: str = ""  # start from these E-Net weights (checkpoint.pt or .safetensors; same attributes and size)
    max_epochs: int = 40
    max_minutes: float = 0.0  # 0 = no time budget
    patience: int = 5  # S23: stop after this many epochs without a lower validation loss; 0 = never
    ckpt_steps: int = 500  # also checkpoint every this many steps within an epoch
    # of flip,color,translation,cutout,blur,noise; "" disables. Only flips by default: the labeller reads a
    # face and its mirror image alike, but it changed its Male verdict on 3.1% of 1,000 validation faces
    # under colour + shift (27% of those it is unsure of), so those augmentations train on wrong labels.
    augment: str = "flip"
    gan_mix: float = 0.0  # share of every batch drawn from labelled G-Net samples; 0 disables
    gnet: str = ""  # G-Net for gan_mix: checkpoint.pt or .safetensors ("" = shipped)
    gan_pool: int = 10000  # G-Net samples to label once (cached in OUT/gan_pool.npz)
    blend_mix: float = 0.0  # share of every batch drawn from blends of two training faces, labelled by the labeller
    blend_pool: int = 10000  # blends to make and label once (cached in OUT/blend_pool.npz)
    adv_eps: float = 0.0  # adversarial training: L-inf radius in [-1, 1] pixel units (0.03 ~ 4/255); 0 disables
    adv_steps: int = 1  # 1 = FGSM, more = PGD with a random start
    ema_kimg: float = 0.0  # half-life of a moving average of the weights, in thousands of images; 0 disables
    bf16: bool = True  # autocast the forward pass (1.3x on this CPU; GroupNorm and the loss stay fp32)
    seed: int = 0
    device: str = "auto"  # auto (a GPU if there is one), cpu or cuda

    def check(self):
        check_numbers(self, positive=("lr",),
                      at_least_0=("momentum", "weight_decay", "step_gamma", "max_minutes", "patience", "adv_eps",
                                  "ema_kimg", "seed"),
                      at_least_1=("resolution", "width", "batch", "step_epochs", "max_epochs", "ckpt_steps",
                                  "gan_pool", "blend_pool", "adv_steps"))
        if self.schedule not in ("cosine", "step"):
            raise FaceattrError(f"unknown schedule {self.schedule!r}: use cosine or step")
        if not (0 <= self.gan_mix < 1 and 0 <= self.blend_mix < 1 and self.gan_mix + self.blend_mix < 1):
            raise FaceattrError(f"--gan-mix and --blend-mix must be >= 0 with a sum below 1, not {self.gan_mix}, "
                                f"{self.blend_mix}")
