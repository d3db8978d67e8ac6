"""Measure S31/S32 (edit.invert.invert, edit.search.search): inversion PSNR against steps on held-out corpus
faces, and seconds per face for a batch of 1 and of 32 (fp32 / bf16 autocast / channels_last).

    python benchmarks/latent_speed.py --gnet runs/gan64/snapshots/gnet-NNNNNN.safetensors \
        --data data/faces128 [--encoder runs/enc/encoder.safetensors] [--enet E.safetensors]

Without --enet the search runs against an untrained E-Net of the shipped shape (speed only).
"""

import argparse
import inspect
import time

import torch

from faceattr.data.dataset import FaceDataset
from faceattr.edit.invert import invert
from faceattr.edit.search import scores, search
from faceattr.imaging import to_float
from faceattr.nets.enet import ENet
from faceattr.weights import load_classifier
from faceattr.weights import load_encoder
from faceattr.weights import load_generator


def curve(G, faces, encoder, steps_list, lrs, restarts, prior_weight, bf16):
    init = encoder(faces) if encoder is not None else None
    for lr in lrs:
        for r in restarts:
            for steps in steps_list:
                t, cpu = time.perf_counter(), time.process_time()
                _, info = invert(G, faces, steps=steps, restarts=r, lr=lr, init=init, prior_weight=prior_weight,
                                 bf16=bf16)
                secs, cpu = time.perf_counter() - t, time.process_time() - cpu
                start = "encoder" if init is not None else "random"
                print(f"invert lr={lr} prior={prior_weight} bf16={bf16} restarts={r} steps={steps} start={start}: "
                      f"PSNR {info['psnr'].mean():.2f} dB (min {info['psnr'].min():.2f}), "
                      f"{secs / len(faces):.3f} s/face ({cpu / len(faces):.3f} CPU s)", flush=True)


def speed(G, E, faces, encoder, inv_steps, restarts, search_steps, modes, repeats=2):
    for b in (1, 32):
        for mode in modes:
            fmt = torch.channels_last if "channels_last" in mode else torch.contiguous_format
            G.to(memory_format=fmt), E.to(memory_format=fmt)
            bf16 = "bf16" in mode
            best = best_cpu = float("inf")
            for _ in range(repeats):
                t, cpu = time.perf_counter(), time.process_time()
                init = encoder(faces[:b]) if encoder is not None else None
                z1, _ = invert(G, faces[:b], steps=inv_steps, restarts=restarts, init=init, bf16=bf16)
                t_inv = time.perf_counter() - t
                flip = (scores(G, E, z1, [0])[:, 0] < 0.5).float()  # add to faces without it, remove from the rest
                search(G, E, z1, 0, flip, steps=search_steps, strength=100.0, bf16=bf16)  # never stops early
                best, best_cpu = min(best, time.perf_counter() - t), min(best_cpu, time.process_time() - cpu)
            print(f"batch {b:2d} {mode:18s}: invert {t_inv / b:.3f} s/face, invert+search {best / b:.3f} s/face, "
                  f"{best:.2f} s per batch ({best_cpu:.2f} CPU s)", flush=True)
    G.to(memory_format=torch.contiguous_format), E.to(memory_format=torch.contiguous_format)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gnet", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--encoder")
    p.add_argument("--enet")
    p.add_argument("--n", type=int, default=32, help="held-out test faces")
    p.add_argument("--steps", default="0,25,50,100,200")
    p.add_argument("--lrs", default="0.05,0.1,0.2")
    p.add_argument("--restarts", default="1")
    p.add_argument("--prior", type=float, default=0.1, help="invert's prior_weight")
    p.add_argument("--bf16", action="store_true", help="curve under bf16 autocast")
    p.add_argument("--modes", default="fp32,bf16,channels_last,bf16+channels_last")
    p.add_argument("--skip-curve", action="store_true")
    p.add_argument("--skip-speed", action="store_true")
    inv, found = inspect.signature(invert).parameters, inspect.signature(search).parameters
    p.add_argument("--inv-steps", type=int, default=inv["steps"].default)
    p.add_argument("--inv-restarts", type=int, default=inv["restarts"].default)
    p.add_argument("--search-steps", type=int, default=found["steps"].default, help="run to the cap: no early stop")
    a = p.parse_args()
    G = load_generator(a.gnet)
    faces = to_float(FaceDataset(a.data, G.resolution, split="test").images[:a.n])
    encoder = load_encoder(a.encoder) if a.encoder else None
    if not a.skip_curve:
        ints = lambda s: [int(v) for v in s.split(",")]  # noqa: E731
        curve(G, faces, encoder, ints(a.steps), [float(v) for v in a.lrs.split(",")], ints(a.restarts), a.prior, a.bf16)
    if not a.skip_speed:
        E = load_classifier(a.enet) if a.enet else ENet(["A"], G.resolution).eval().requires_grad_(False)
        speed(G, E, faces, encoder, a.inv_steps, a.inv_restarts, a.search_steps, a.modes.split(","))


if __name__ == "__main__":
    main()
