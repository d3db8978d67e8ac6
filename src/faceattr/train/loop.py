"""What every training loop needs, and the one loop the three trainers share (`Trainer`): the device and
torchrun/DDP setup, exact resumes from OUT/checkpoint.pt (RNG states included), atomic checkpoints, logs
(metrics.csv, TensorBoard), the budget of images / epochs / minutes, and OUT/config.json."""

import csv
import dataclasses
import json
import os
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from faceattr import weights
from faceattr.errors import FaceattrError
from faceattr.fileio import atomic_path, write_text
from faceattr.train.config import defaults, flag


@torch.no_grad()
def update_ema(ema, model, beta):
    """ema <- beta * ema + (1 - beta) * model, parameter by parameter."""
    for pe, p in zip(ema.parameters(), model.parameters()):
        pe.lerp_(p.detach(), 1 - beta)


class Dist:
    """The process's place in a torchrun job (a single process is rank 0 of 1).

    torchrun sets WORLD_SIZE/RANK/LOCAL_RANK; we then join a process group: nccl on GPUs, gloo on CPUs.
    `device`: auto (a GPU if there is one), cpu or cuda.
    """

    def __init__(self, device: str = "auto"):
        if device == "cuda" and not torch.cuda.is_available():
            raise FaceattrError("--device cuda: no CUDA GPU is available to this process; use --device cpu")
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if device != "cpu" and torch.cuda.is_available():
            self.device = torch.device("cuda", local)
            torch.cuda.set_device(self.device)
        else:
            self.device = torch.device("cpu")
            if self.world > 1:  # share the cores instead of oversubscribing them
                local_world = int(os.environ.get("LOCAL_WORLD_SIZE", self.world))
                torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def wrap(self, module):
        """DistributedDataParallel when there are several processes, else the module itself."""
        if self.world == 1:
            return module
        ids = [self.device.index] if self.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(module, device_ids=ids, broadcast_buffers=False)

    def from_main(self, flag) -> bool:
        """Rank 0's decision for every process (it alone evaluates), so all stop together."""
        if self.world == 1:
            return bool(flag)
        t = torch.tensor([float(bool(flag))], device=self.device)
        dist.broadcast(t, 0)
        return bool(t.item())

    def barrier(self):
        if self.world > 1:
            dist.barrier()

    def close(self):
        """Leave the group together: a rank that tears down while another still talks can abort the job."""
        if self.world > 1 and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()


def rng_state() -> dict:
    """Every RNG's state as tensors and plain numbers, so a checkpoint loads with weights_only=True."""
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "gauss": float(gauss)}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict):
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_all(seed: int):
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def plain(x):
    """numpy scalars and arrays inside a checkpoint's dicts and lists -> Python numbers and tensors."""
    if isinstance(x, dict):
        return type(x)((k, plain(v)) for k, v in x.items())
    if isinstance(x, (list, tuple)):
        return type(x)(plain(v) for v in x)
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return torch.from_numpy(x)
    return x


class MetricLog:
    """Scalars to TensorBoard and a CSV (one row per log call); on resume, rows past the checkpoint are dropped."""

    def __init__(self, run_dir: Path, resume_step: int | None):
        from torch.utils.tensorboard import SummaryWriter

        self.csv_path = Path(run_dir) / "metrics.csv"
        self.rows = []
        if resume_step is not None and self.csv_path.exists():
            with open(self.csv_path, newline="") as f:
                self.rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
        elif self.csv_path.exists():
            self.csv_path.unlink()
        self.tb = SummaryWriter(str(Path(run_dir) / "tensorboard"), purge_step=resume_step)

    def log(self, step: int, **scalars):
        for k, v in scalars.items():
            self.tb.add_scalar(k, v, step)
        self.rows.append({"step": step, **scalars})
        fields = list(dict.fromkeys(k for r in self.rows for k in r))
        with atomic_path(self.csv_path) as tmp, open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            w.writerows(self.rows)
        self.tb.flush()

    def close(self):
        self.tb.close()


class Trainer:
    """The loop of every trainer. A subclass's __init__ calls super().__init__(cfg) (which checks the
    config and sets up the device), checks its inputs, builds its networks, then calls `resume()`
    before wrapping them for DDP; nothing is written before `run()` (or a cache the subclass makes).

    A subclass defines `state()` / `load_state(s)` (its part of the checkpoint), `train_step()` -> losses,
    `checkpoint(losses)` -> the row of figures it logs (evaluate, then `save()`), and `batch_images`
    (images per step, all processes). The default schedule is in images: a checkpoint every
    cfg.ckpt_kimg, a stop at cfg.max_kimg or cfg.max_minutes (E-Net overrides it with epochs).
    """

    distributed = True  # runs under torchrun; False: one process only
    fixed = ()  # config fields a resumed run must keep

    def __init__(self, cfg):
        cfg.check()
        self.cfg, self.out = cfg, Path(cfg.out)
        if self.out.exists() and not self.out.is_dir():
            raise FaceattrError(f"--out {self.out} is a file, not a run folder")
        self.dist = Dist(cfg.device)
        if self.dist.world > 1 and not self.distributed:
            raise FaceattrError(f"this training runs as one process, not {self.dist.world} (no torchrun)")
        self.ckpt_path = self.out / "checkpoint.pt"
        self.step, self.nimg, self.history, self.saved_step = 0, 0, [], None
        self.t0, self.log, self.last_losses = time.time(), None, {}

    # --- checkpoints: everything needed to continue exactly where we stopped ---
    def save(self):
        """Rank 0: the checkpoint, atomically (a kill during the write leaves the previous one)."""
        state = {"config": dataclasses.asdict(self.cfg), "step": self.step, "nimg": self.nimg,
                 "history": self.history, "rng": rng_state(), **self.state()}
        weights.save_checkpoint(self.ckpt_path, plain(state))
        self.saved_step = self.step

    def resume(self) -> bool:
        """Continue from OUT/checkpoint.pt if there is one: refused if saved with other `fixed` options."""
        if not self.ckpt_path.exists():
            return False
        s = weights.load_checkpoint(self.ckpt_path)
        saved, default = s.get("config"), defaults(type(self.cfg))
        if not isinstance(saved, dict):
            raise FaceattrError(f"{self.ckpt_path}: not a training run's checkpoint (no config)")
        changed = [k for k in self.fixed if saved.get(k, default[k]) != getattr(self.cfg, k)]
        if changed:
            raise FaceattrError(f"{self.ckpt_path}: saved with " + " ".join(
                f"{flag(k)} {saved.get(k, default[k])}" for k in changed) + "; resume with the same, or use another --out")
        try:
            self.load_state(s)
            self.step, self.nimg, self.history = s["step"], s.get("nimg", 0), s["history"]
            if self.dist.world == 1:  # RNG streams are per process; a changed world size starts fresh ones
                set_rng_state(s["rng"])
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, IndexError) as e:
            raise FaceattrError(f"{self.ckpt_path}: cannot resume from it ({weights.reason(e)}); "
                                "remove it or use another --out") from None
        self.saved_step = self.step
        return True

    # --- the default schedule: images ---
    def progress(self):
        """-> (done, total, unit) for the progress bar."""
        return self.nimg, int(self.cfg.max_kimg * 1000), "img"

    def out_of_time(self) -> bool:
        return bool(self.cfg.max_minutes and time.time() - self.t0 > self.cfg.max_minutes * 60)

    def finished(self) -> bool:
        """Rank 0: is the budget spent (or does the trainer's stopping rule say stop)?"""
        return self.nimg >= self.cfg.max_kimg * 1000 or self.out_of_time()

    def after_step(self, losses):
        """Every process, after each step: -> the checkpoint's row when one is due (rank 0), else None."""
        every = max(1, int(self.cfg.ckpt_kimg * 1000))
        if self.nimg // every > (self.nimg - self.batch_images) // every or self.nimg >= self.cfg.max_kimg * 1000:
            return self.checkpoint(losses) if self.dist.main else None
        return None

    def finish(self):
        """Rank 0, after the loop: a budget of minutes can end it between checkpoints."""
        if self.saved_step != self.step:
            self.checkpoint(self.last_losses)

    # --- the loop ---
    def run(self):
        cfg, main = self.cfg, self.dist.main
        if main:
            self.out.mkdir(parents=True, exist_ok=True)
            self.log = MetricLog(self.out, self.step if self.step else None)
            write_text(self.out / "config.json", json.dumps(dataclasses.asdict(cfg), indent=2))
        self.t0, start = time.time(), self.step
        done, total, unit = self.progress()
        bar = tqdm(total=total, initial=done, unit=unit, unit_scale=unit == "img", disable=not main,
                   dynamic_ncols=True)
        while not self.dist.from_main(main and self.finished()):
            losses = self.last_losses = self.train_step()
            now = self.progress()[0]
            bar.update(now - done)
            done = now
            row = self.after_step(losses)
            if row:
                bar.write(" ".join(f"{k}={v:.4g}" for k, v in row.items()))
            elif main and self.step % 10 == 0:
                ips = (self.step - start) * self.batch_images / (time.time() - self.t0)
                bar.set_postfix({**{k: f"{v:.4g}" for k, v in losses.items()}, "ips": f"{ips:.0f}"})
                self.log.log(self.step, **losses, images_per_s=ips)
        bar.close()
        if main:
            self.finish()
            self.log.close()
        self.dist.close()
        return self.history
