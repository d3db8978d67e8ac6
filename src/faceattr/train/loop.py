"""What every training loop needs: devices, torchrun/DDP setup, RNG state for exact resumes, EMA, logs
(checkpoints are written and read by `weights.save_checkpoint` / `load_checkpoint`)."""

import csv
import os
import random
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from faceattr.fileio import atomic_path


@torch.no_grad()
def update_ema(ema, model, beta):
    """ema <- beta * ema + (1 - beta) * model, parameter by parameter."""
    for pe, p in zip(ema.parameters(), model.parameters()):
        pe.lerp_(p.detach(), 1 - beta)


class Dist:
    """The process's place in a torchrun job (a single process is rank 0 of 1).

    torchrun sets WORLD_SIZE/RANK/LOCAL_RANK; we then join a process group: nccl on GPUs, gloo on CPUs.
    """

    def __init__(self):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if torch.cuda.is_available():
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
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict):
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_all(seed: int):
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


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
