"""Train E-Net, the attribute judge: patent steps S21-S23.

S21  feed labelled real faces: label 1 with the attribute, 0 without (one logit per attribute).
S22  binary cross-entropy on the logits (optionally against the labeller's own probabilities, i.e.
     distillation, instead of its 0/1 labels; optionally weighting positives by negatives/positives per
     attribute, for imbalance), backpropagate, update with SGD (momentum, Nesterov; cosine or step LR).
S23  repeat until the loss converges: after every epoch the loss on the validation split is measured,
     and training stops when it has not improved for `patience` epochs (or on the epoch/minute budget).
     The best-validation weights are kept, scored on the test split (test_metrics.json) and exported.

Beyond the patent, for an E-Net that an edit (S32) cannot fool, each switchable: augmentation (flip,
colour, shift, cutout, blur, noise; only flips by default, see ClassifierConfig.augment), mixing in G-Net
samples labelled by the corpus labeller's own judges (a pool labelled once, cached in the run folder),
the same for blends of two training faces (mixup whose labels are the labeller's reading of the blend,
not a mix of the two labels: more faces near the labeller's decision boundary, where E-Net errs most),
adversarial training (FGSM/PGD on the input), and an exponential moving average of the weights (as for
G-Net), which is what is then validated, kept and exported. Runs as one process or under
`torchrun --nproc_per_node N` (DistributedDataParallel).
Exact resume from OUT/checkpoint.pt, saved atomically every `ckpt_steps` steps and every epoch.
"""

import copy
import json
import math
import shlex
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from faceattr.errors import FaceattrError
from faceattr.eval.classification import json_safe, report
from faceattr.fileio import atomic_path, write_text
from faceattr.imaging import to_float
from faceattr.nets.enet import ENet
from faceattr import weights
from faceattr.train import loop
from faceattr.train.augment import POLICIES, diff_augment
from faceattr.train.config import ClassifierConfig


AUGMENTS = ("flip", *POLICIES, "blur", "noise")


def parse_augment(policy: str) -> list[str]:
    names = [p for p in policy.split(",") if p]
    unknown = [n for n in names if n not in AUGMENTS]
    if unknown:
        raise FaceattrError(f"unknown augmentation {', '.join(unknown)}; choose from {', '.join(AUGMENTS)}")
    return names


def augment(x, policy: str):
    """Random per-image flips, DiffAugment's colour/shift/cutout, Gaussian blur (sigma up to 1 px),
    noise (std up to 0.1); the result is clamped to [-1, 1] like any real input."""
    names = parse_augment(policy)
    b = x.shape[0]
    if "flip" in names:
        x = torch.where(torch.rand(b, 1, 1, 1, device=x.device) < 0.5, x.flip(3), x)
    x = diff_augment(x, ",".join(n for n in names if n in POLICIES))
    if "blur" in names:
        sigma = torch.rand(b, 1, device=x.device) * 0.9 + 0.1
        k = torch.exp(-torch.arange(-2, 3, device=x.device).float() ** 2 / (2 * sigma**2))
        k = (k / k.sum(1, keepdim=True)).repeat_interleave(x.shape[1], 0)  # (b*c, 5)
        y = x.reshape(1, -1, *x.shape[2:])
        y = F.conv2d(F.pad(y, (2, 2, 0, 0), mode="reflect"), k[:, None, None, :], groups=y.shape[1])
        y = F.conv2d(F.pad(y, (0, 0, 2, 2), mode="reflect"), k[:, None, :, None], groups=y.shape[1])
        x = y.reshape(x.shape)
    if "noise" in names:
        x = x + torch.randn_like(x) * torch.rand(b, 1, 1, 1, device=x.device) * 0.1
    return x.clamp(-1, 1)


def adversarial(e, x, y, eps: float, steps: int):
    """FGSM (steps=1) or PGD from a random start: inputs within eps (L-inf) that raise E-Net's loss."""
    x_adv = x.detach() + (torch.empty_like(x).uniform_(-eps, eps) if steps > 1 else 0)
    alpha = eps if steps == 1 else 2.5 * eps / steps
    for _ in range(steps):
        x_adv = x_adv.clamp(-1, 1).requires_grad_(True)
        (grad,) = torch.autograd.grad(F.binary_cross_entropy_with_logits(e(x_adv), y), x_adv)
        x_adv = torch.min(torch.max(x_adv.detach() + alpha * grad.sign(), x - eps), x + eps)
    return x_adv.clamp(-1, 1).detach()


@torch.no_grad()
def predict(e, images_u8, device, batch: int = 256) -> torch.Tensor:
    """uint8 faces (N, H, W, 3) -> E-Net logits (N, A) on the CPU."""
    e.eval()
    out = [e(to_float(images_u8[i:i + batch]).to(device)).float().cpu() for i in range(0, len(images_u8), batch)]
    return torch.cat(out) if out else torch.zeros(0, len(e.attr_names))


def evaluate(e, dataset, device) -> tuple[float, dict]:
    """-> (mean BCE over attributes, per-attribute report) on a labelled split."""
    logits = predict(e, dataset.images, device)
    labels = torch.from_numpy(dataset.labels)
    loss = F.binary_cross_entropy_with_logits(logits, labels).item()
    return loss, report(labels.numpy(), torch.sigmoid(logits).numpy(), e.attr_names)


def labelled_pool(cfg: ClassifierConfig, kind: str, attrs, labeller, train_set) -> tuple[np.ndarray, np.ndarray]:
    """Extra training faces labelled by `labeller` (default: the corpus labeller's judges), made once
    and cached in OUT/<kind>_pool.npz; faces in which no face is found are dropped. kind "gan":
    cfg.gan_pool G-Net samples; "blend": cfg.blend_pool blends a*x + (1-a)*y of two random training
    faces, a uniform in [0.2, 0.8]."""
    from faceattr.data.label import VIEWS

    n = cfg.gan_pool if kind == "gan" else cfg.blend_pool
    path = Path(cfg.out) / f"{kind}_pool.npz"
    key = json.dumps({"kind": kind, "gnet": cfg.gnet if kind == "gan" else None, "n": n, "attrs": list(attrs),
                      "seed": cfg.seed, "soft": cfg.soft_labels, "views": VIEWS,
                      "train": len(train_set) if kind == "blend" else None})
    if path.exists():
        with np.load(path) as f:
            if str(f["key"]) == key:
                return f["images"], f["labels"]
    if kind == "gan":
        from faceattr.weights import load_generator
        from faceattr.nets.gnet import sample

        g = load_generator(cfg.gnet or None)
        if g.resolution != cfg.resolution:
            raise FaceattrError(f"--gnet makes {g.resolution} px faces but E-Net is trained at {cfg.resolution} px")
        images = sample(g, n, seed=cfg.seed)
    else:
        rng = np.random.default_rng(cfg.seed)
        pairs = rng.integers(0, len(train_set), (n, 2))
        a = rng.uniform(0.2, 0.8, (n, 1, 1, 1)).astype(np.float32)
        faces = train_set.images
        images = np.concatenate([(a[i:i + 256] * faces[pairs[i:i + 256, 0]] + (1 - a[i:i + 256])
                                  * faces[pairs[i:i + 256, 1]] + 0.5).astype(np.uint8) for i in range(0, n, 256)])
    if labeller is None:
        from faceattr.data.label import AttributeLabeller

        labeller = AttributeLabeller(attrs, soft=cfg.soft_labels)
    labels, found = [], []
    for i in tqdm(range(0, len(images), 256), desc=f"labelling the {kind} pool", dynamic_ncols=True):
        lab, ok = labeller(images[i:i + 256])
        labels.append(lab)
        found.append(ok)
    found = np.concatenate(found)
    images, labels = images[found], np.concatenate(labels)[found].astype(np.float32)
    if not len(images):
        hint = "; check --gnet" if kind == "gan" else ""
        raise FaceattrError(f"the labeller found no face in the {kind} pool{hint}")
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, images=images, labels=labels, key=key)
    return images, labels


def lineage(init: str) -> list[dict]:
    """The runs a chain of --init checkpoints went through, oldest first (command, epochs, test
    accuracy), for the model card; [] without --init or when starting from a .safetensors."""
    if not init or Path(init).suffix != ".pt":
        return []
    ckpt = weights.load_checkpoint(init)
    try:
        accuracy = {a: m["accuracy"] for a, m in (ckpt.get("test_metrics") or {}).items()}
        return [*ckpt.get("lineage", []), {"command": ckpt["command"], "epochs": ckpt["epoch"],
                                            "best_epoch": ckpt["best_epoch"] + 1, "test_accuracy": accuracy}]
    except (KeyError, TypeError, AttributeError) as e:
        raise FaceattrError(f"--init {init}: not an E-Net run's checkpoint ({weights.reason(e)})") from None


class Trainer(loop.Trainer):
    fixed = ("batch", "gan_mix", "blend_mix", "ema_kimg")  # ema_kimg: S23 must judge the same weights throughout

    def __init__(self, cfg: ClassifierConfig, labeller=None):
        """`labeller`: images -> (labels, found) for the extra pools; default the corpus labeller's judges."""
        from faceattr.data.dataset import FaceDataset

        super().__init__(cfg)
        parse_augment(cfg.augment)
        if cfg.gnet and not cfg.gan_mix:
            warnings.warn("--gnet is unused: G-Net samples are mixed in only with --gan-mix > 0", stacklevel=2)
        if cfg.batch % self.dist.world or cfg.batch < self.dist.world:
            raise FaceattrError(f"--batch {cfg.batch} must be a multiple of {self.dist.world} processes")
        self.batch_images = cfg.batch
        attrs = list(cfg.attrs) or None
        self.train_set = FaceDataset(cfg.data, cfg.resolution, "train", attrs)
        if self.train_set.labels is None or not self.train_set.attr_names:
            raise FaceattrError(f"{cfg.data} has no attribute labels to train E-Net on (S21)")
        self.attrs = self.train_set.attr_names
        self.val_set = FaceDataset(cfg.data, cfg.resolution, "val", self.attrs)
        self.test_set = FaceDataset(cfg.data, cfg.resolution, "test", self.attrs)
        if not len(self.val_set):
            raise FaceattrError(f"{cfg.data} has an empty validation split: S23's stopping rule needs one")
        self.targets = self.train_set.labels  # S22's targets; validation and test always use the 0/1 labels
        if cfg.soft_labels:
            from faceattr.data.label import read_soft_labels

            self.targets = read_soft_labels(cfg.data, self.train_set.filenames, self.attrs)

        b = cfg.batch // self.dist.world  # per process
        self.b_pool = {kind: round(b * share) for kind, share in (("gan", cfg.gan_mix), ("blend", cfg.blend_mix))
                       if round(b * share)}  # faces per process and step from each extra pool
        self.b_real = b - sum(self.b_pool.values())
        self.steps_per_epoch = len(self.train_set) // (self.b_real * self.dist.world)
        if self.steps_per_epoch < 1:
            raise FaceattrError(f"--batch {cfg.batch} is larger than the training split ({len(self.train_set)})")
        self.pools = {}
        for kind in self.b_pool:  # made by rank 0, then read from its cache by the others
            if self.dist.main:
                self.pools[kind] = labelled_pool(cfg, kind, self.attrs, labeller, self.train_set)
            self.dist.barrier()
            if kind not in self.pools:
                self.pools[kind] = labelled_pool(cfg, kind, self.attrs, labeller, self.train_set)

        dev = self.dist.device
        loop.seed_all(cfg.seed)  # the same initial weights in every process
        self.e = ENet(self.attrs, cfg.resolution, cfg.width).to(dev)
        loop.seed_all(cfg.seed + self.dist.rank)  # then each process draws its own augmentations
        self.opt = torch.optim.SGD(self.e.parameters(), cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                                   weight_decay=cfg.weight_decay)
        pos = self.train_set.labels.mean(0)
        self.pos_weight = (torch.from_numpy((1 - pos) / np.maximum(pos, 1e-3)).float().to(dev)
                           if cfg.pos_weight else None)
        self.epoch, self.k = 0, 0
        self.best_loss, self.best_epoch, self.e_best = math.inf, -1, None  # None: no epoch validated yet
        self.test_metrics, self.command = None, shlex.join(["faceattr", *sys.argv[1:]])
        self.lineage = []
        if cfg.init and not self.ckpt_path.exists():
            self.start_from(cfg.init)
        self.e_ema = copy.deepcopy(self.e).requires_grad_(False) if cfg.ema_kimg else None
        self.resume()
        self.e_ddp = self.dist.wrap(self.e)  # after loading: every process starts from rank 0's weights
        self._perm = (None, None, None)

    # --- checkpoints: everything needed to continue exactly where we stopped ---
    def data_summary(self):
        return {"root": str(Path(self.cfg.data).resolve()), "attrs": self.attrs, "n_train": len(self.train_set),
                "n_val": len(self.val_set), "n_test": len(self.test_set),
                "train_positive_rate": dict(zip(self.attrs, self.train_set.labels.mean(0).tolist())),
                **{f"{kind}_pool": len(pool[0]) for kind, pool in self.pools.items()}}

    def state(self):
        return {
            "net": self.e.net_config(), "data": self.data_summary(), "command": self.command, "lineage": self.lineage,
            "epoch": self.epoch, "k": self.k, "best_loss": self.best_loss, "best_epoch": self.best_epoch,
            "test_metrics": self.test_metrics, "E": self.e.state_dict(),
            "E_ema": self.e_ema and self.e_ema.state_dict(), "E_best": self.e_best, "opt": self.opt.state_dict(),
        }

    def start_from(self, init):
        """--init: another run's best weights (or exported ones); its chain of runs is kept for the model
        card now, since that run may be gone by export time. A resumed run has both in its checkpoint.
        A narrower E-Net is widened to --width first, computing the same logits (`nets.enet.widen`); from
        an E-Net of more attributes, the trunk and the heads of this run's attributes are kept, so a one-attribute
        E-Net (the patent's per-attribute classifier) can grow from a shared one."""
        from faceattr.nets.enet import ENetGroup, select_heads, widen
        from faceattr.weights import load_classifier

        e = load_classifier(init)
        if isinstance(e, ENetGroup):  # its member that judges this run's attributes
            e = next((n for n in e.nets if set(self.attrs) <= set(n.attr_names)), None)
            if e is None:
                raise FaceattrError(f"--init {init}: no E-Net of this group judges all of {', '.join(self.attrs)}")
        if e.attr_names != self.attrs and set(self.attrs) <= set(e.attr_names):
            e = select_heads(e, self.attrs)
        if e.width < self.e.width and {**e.net_config(), "width": self.e.width} == self.e.net_config():
            e = widen(e, self.e.width, torch.Generator().manual_seed(self.cfg.seed))
        if e.net_config() != self.e.net_config():
            raise FaceattrError(f"--init {init} is an E-Net {e.net_config()}, not {self.e.net_config()}")
        self.e.load_state_dict(e.state_dict())
        self.lineage = lineage(init)

    def load_state(self, s):
        if s["net"] != self.e.net_config():
            raise FaceattrError(f"{self.ckpt_path}: saved for E-Net {s['net']}, not {self.e.net_config()}")
        self.e.load_state_dict(s["E"])
        if self.e_ema is not None:
            self.e_ema.load_state_dict(s["E_ema"])
        self.opt.load_state_dict(s["opt"])
        self.epoch, self.k = s["epoch"], s["k"]
        self.best_loss, self.best_epoch, self.e_best = s["best_loss"], s["best_epoch"], s["E_best"]
        self.lineage = s.get("lineage", [])
        self.command = s["command"]

    @property
    def e_judged(self):
        """The E-Net that S23 validates, keeps and tests: the weight average with --ema-kimg, else the weights."""
        return self.e if self.e_ema is None else self.e_ema

    # --- S21: the faces and labels of one step, the same on resume ---
    def batch(self):
        """This process's share of step k of the epoch: a slice of the epoch's permutation (the same
        in every process, a function of seed and epoch), plus its share of each extra pool."""
        cfg, rank, world = self.cfg, self.dist.rank, self.dist.world
        if self._perm[0] != self.epoch:
            gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + self.epoch)
            perm = torch.randperm(len(self.train_set), generator=gen).numpy()
            self._perm = (self.epoch, perm, {kind: torch.randperm(len(pool[0]), generator=gen)
                                             for kind, pool in self.pools.items()})
        _, perm, pool_perms = self._perm
        lo = (self.k * world + rank) * self.b_real
        idx = np.sort(perm[lo:lo + self.b_real])  # sorted: one forward sweep over the memmap
        x, y = [self.train_set.batch(idx)], [torch.from_numpy(self.targets[idx])]
        for kind, (images, labels) in self.pools.items():
            b, order = self.b_pool[kind], pool_perms[kind]
            j = order[torch.arange((self.k * world + rank) * b, (self.k * world + rank + 1) * b) % len(order)].numpy()
            x.append(torch.from_numpy(images[j]).permute(0, 3, 1, 2))
            y.append(torch.from_numpy(labels[j]))
        x, y = torch.cat(x), torch.cat(y)
        return to_float(x).to(self.dist.device), y.to(self.dist.device)

    def lr(self):
        cfg = self.cfg
        if cfg.schedule == "step":
            return cfg.lr * cfg.step_gamma ** (self.epoch // cfg.step_epochs)
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * self.step / (cfg.max_epochs * self.steps_per_epoch)))

    # --- S22 ---
    def train_step(self):
        cfg = self.cfg
        x, y = self.batch()
        x = augment(x, cfg.augment)
        self.e.train()  # before the attack too: E-Net's eval mode averages mirror images
        if cfg.adv_eps:  # train on clean and attacked faces alike, in one pass
            x_adv = adversarial(self.e, x, y, cfg.adv_eps, cfg.adv_steps)
            x, y = torch.cat([x, x_adv]), torch.cat([y, y])
        lr = self.lr()
        for group in self.opt.param_groups:
            group["lr"] = lr
        with torch.autocast(x.device.type, torch.bfloat16, enabled=cfg.bf16):
            logits = self.e_ddp(x)
        loss = F.binary_cross_entropy_with_logits(logits.float(), y, pos_weight=self.pos_weight)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        if self.e_ema is not None:
            loop.update_ema(self.e_ema, self.e, 0.5 ** (cfg.batch / (cfg.ema_kimg * 1000)))
        self.step += 1
        self.k += 1
        return {"loss": loss.item(), "lr": lr}

    # --- S23 ---
    def end_epoch(self):
        """Rank 0: validation loss and metrics, keep the best weights (the average, with --ema-kimg), checkpoint."""
        e = self.e_judged
        val_loss, val = evaluate(e, self.val_set, self.dist.device)
        row = {"epoch": self.epoch + 1, "val_loss": val_loss,
               **{f"val_{k}_{a}": m[k] for a, m in val.items() for k in ("accuracy", "roc_auc", "ece")}}
        self.history.append(row)
        self.log.log(self.step, **row)
        if val_loss < self.best_loss:
            self.best_loss, self.best_epoch = val_loss, self.epoch
            self.e_best = copy.deepcopy(e.state_dict())
        self.epoch, self.k = self.epoch + 1, 0
        self.save()
        return row

    # --- the schedule: epochs ---
    def progress(self):
        return self.step, self.cfg.max_epochs * self.steps_per_epoch, "step"

    def finished(self):
        cfg = self.cfg
        return (self.epoch >= cfg.max_epochs
                or bool(cfg.patience and self.history and self.epoch - 1 - self.best_epoch >= cfg.patience)
                or self.out_of_time())

    def after_step(self, losses):
        if self.k == self.steps_per_epoch:
            if self.dist.main:
                return self.end_epoch()
            self.epoch, self.k = self.epoch + 1, 0
        elif self.dist.main and self.step % self.cfg.ckpt_steps == 0:
            self.save()
        return None

    def finish(self):
        self.test()

    def test(self):
        """Best-validation weights (current ones if no epoch ended) on the test split -> OUT/test_metrics.json."""
        e = copy.deepcopy(self.e_judged)
        if self.e_best is not None:
            e.load_state_dict(self.e_best)
        _, metrics = evaluate(e, self.test_set, self.dist.device)
        self.test_metrics = json_safe(metrics)
        write_text(self.out / "test_metrics.json", json.dumps(self.test_metrics, indent=2))
        self.save()
        for a, m in self.test_metrics.items():
            self.log.log(self.step, **{f"test_{k}_{a}": m[k] for k in ("accuracy", "balanced_accuracy", "roc_auc", "ece")
                                  if m[k] is not None})
            print(f"test {a}: " + " ".join(f"{k}={m[k]}" for k in ("accuracy", "balanced_accuracy", "roc_auc", "ece")))
        print(f"export: faceattr export classifier {self.ckpt_path} -o enet.safetensors")


def train(cfg: ClassifierConfig, labeller=None):
    return Trainer(cfg, labeller).run()
