"""Training images/s of the default GAN recipe against the textbook way, same networks, same machine.

ours:      faces from the uint8 memory-mapped cache, bf16 autocast, channels_last (the defaults)
textbook:  each batch decoded from JPEG with PIL and resized, fp32, NCHW

    python benchmarks/train_throughput.py --data /path/to/corpus [--steps 30]
"""

import argparse
import shutil
import tempfile
import time

import numpy as np
import torch
from PIL import Image

from faceattr.data.dataset import FaceDataset
from faceattr.train.gan import GanConfig, Trainer


class DecodeEveryBatch:
    """The textbook loader: open, decode and resize each JPEG whenever it is drawn."""

    def __init__(self, cached: FaceDataset, root):
        self.paths = [f"{root}/img_align_celeba/{f}" if "/" not in f else f for f in cached.filenames]
        self.res = cached.images.shape[1]

    def __len__(self):
        return len(self.paths)

    def batch(self, idx):
        ims = [np.asarray(Image.open(self.paths[i]).convert("RGB").resize((self.res, self.res), Image.LANCZOS))
               for i in idx]
        return torch.from_numpy(np.stack(ims)).permute(0, 3, 1, 2)


def measure(trainer: Trainer, steps: int, warmup: int = 3) -> float:
    b = trainer.cfg.batch
    for _ in range(warmup):
        trainer.train_step(b)
    t = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(b)
    return steps * b / (time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--resolution", type=int, default=64)
    args = ap.parse_args()
    out = tempfile.mkdtemp()
    try:
        base = dict(data=args.data, resolution=args.resolution, eval_n=0)
        ours = Trainer(GanConfig(out=f"{out}/ours", **base))
        textbook = Trainer(GanConfig(out=f"{out}/textbook", bf16=False, channels_last=False, **base))
        textbook.train_set = DecodeEveryBatch(textbook.train_set, args.data)
        a, b = measure(ours, args.steps), measure(textbook, args.steps)
    finally:
        shutil.rmtree(out)
    print(f"threads={torch.get_num_threads()} resolution={args.resolution} batch={ours.cfg.batch} steps={args.steps}")
    print(f"ours (uint8 cache, bf16, channels_last): {a:.1f} img/s")
    print(f"textbook (PIL decode, fp32, NCHW):       {b:.1f} img/s")
    print(f"ratio: {a / b:.2f}x")


if __name__ == "__main__":
    main()
