"""Measure S31/S32 as the editor runs them (`Editor.invert`, `Editor.search`), for either G-Net: inversion
PSNR against steps on held-out corpus faces, and seconds per face for a batch of 1 and of 32
(patent G-Net: fp32 / bf16 autocast / channels_last; MobileStyleGAN: fp32).

    python benchmarks/latent_speed.py --gnet patent|mobilestylegan|runs/gan64/snapshots/gnet-NNNNNN.safetensors \
        --data data/faces128 [--encoder runs/enc/encoder.safetensors] [--enet E.safetensors] [--directions D]

Faces are aligned corpus faces at the editor's working resolution (`editor.resolution`: 64 px for the patent
G-Net, 128 px for MobileStyleGAN); PSNR as the editor reports it. Steps, learning rates and restarts are
EditOptions (`invert_steps`, `invert_lr`, `restarts`, `prior_weight`, `bf16`) on the G-Net's defaults.
The search runs to its step cap (a goal it never reaches).
"""

import argparse
import time

import torch

from faceattr.data.dataset import FaceDataset
from faceattr.edit.pipeline import Editor


def curve(editor, faces, steps_list, lrs, restarts, prior_weight, bf16):
    base = editor.options
    for lr in lrs:
        for r in restarts:
            for steps in steps_list:
                changes = dict(invert_steps=steps, invert_lr=lr, restarts=r)
                if not editor.stylegan:
                    changes.update(prior_weight=prior_weight, bf16=bf16)
                editor.options = base.updated(**changes)
                t, cpu = time.perf_counter(), time.process_time()
                _, info = editor.invert(faces)
                secs, cpu = time.perf_counter() - t, time.process_time() - cpu
                start = "encoder" if editor.encoder is not None else "mean" if editor.stylegan else "random"
                print(f"{editor.G.name} invert {changes} start={start}: PSNR {info['psnr'].mean():.2f} dB "
                      f"(min {info['psnr'].min():.2f}), {secs / len(faces):.3f} s/face ({cpu / len(faces):.3f} CPU s)",
                      flush=True)
    editor.options = base


def speed(editor, faces, modes, repeats=2):
    base, attr = editor.options, editor.attr_names[0]
    for b in (1, 32):
        part = faces[:b]
        for mode in modes:
            fmt = torch.channels_last if "channels_last" in mode else torch.contiguous_format
            editor.G.to(memory_format=fmt), editor.E.to(memory_format=fmt)
            editor.options = base.updated(search_goal=1.0, **({} if editor.stylegan else {"bf16": "bf16" in mode}))
            best = best_cpu = t_inv = float("inf")
            for _ in range(repeats):
                t, cpu = time.perf_counter(), time.process_time()
                z1, _ = editor.invert(part)
                generators, _ = editor.tune(part, z1)
                t_inv = min(t_inv, time.perf_counter() - t)
                # patent G-Net: strength 100 puts the stop out of reach; MobileStyleGAN: goal 1.0 does
                editor.search(z1, {attr: 1}, strength=1.0 if editor.stylegan else 100.0, generators=generators)
                best, best_cpu = min(best, time.perf_counter() - t), min(best_cpu, time.process_time() - cpu)
            print(f"{editor.G.name} batch {len(part):2d} {mode:18s}: S31 {t_inv / len(part):.3f} s/face, S31+S32 "
                  f"{best / len(part):.3f} s/face, {best:.2f} s per batch ({best_cpu:.2f} CPU s)", flush=True)
    editor.G.to(memory_format=torch.contiguous_format), editor.E.to(memory_format=torch.contiguous_format)
    editor.options = base


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gnet", default="patent", help="patent (shipped) | mobilestylegan | a patent G-Net run's weights")
    p.add_argument("--data", required=True)
    p.add_argument("--encoder", help="S31 encoder (default: none)")
    p.add_argument("--enet", help="default: shipped")
    p.add_argument("--directions", help="MobileStyleGAN's S32 directions (default: shipped)")
    p.add_argument("--n", type=int, default=32, help="held-out test faces")
    p.add_argument("--steps", default="0,25,50,100,200")
    p.add_argument("--lrs", default=None, help="invert_lr values (default: the G-Net's)")
    p.add_argument("--restarts", default="1")
    p.add_argument("--prior", type=float, default=0.1, help="prior_weight (patent G-Net)")
    p.add_argument("--bf16", action="store_true", help="curve under bf16 autocast (patent G-Net)")
    p.add_argument("--modes", default=None, help="default: fp32,bf16,channels_last,bf16+channels_last for the "
                                                 "patent G-Net, fp32 for MobileStyleGAN")
    p.add_argument("--skip-curve", action="store_true")
    p.add_argument("--skip-speed", action="store_true")
    p.add_argument("--inv-steps", type=int, help="S31 steps of the speed runs (default: the G-Net's)")
    p.add_argument("--inv-restarts", type=int, default=1)
    p.add_argument("--search-steps", type=int, help="S32 steps, run to the cap (default: the G-Net's)")
    a = p.parse_args()
    changes = {k: v for k, v in (("invert_steps", a.inv_steps), ("search_steps", a.search_steps)) if v is not None}
    editor = Editor(a.gnet, a.enet, a.encoder or False, directions=a.directions, restarts=a.inv_restarts, **changes)
    faces = FaceDataset(a.data, editor.resolution, split="test").images[:a.n]
    if not a.skip_curve:
        ints = lambda s: [int(v) for v in s.split(",")]  # noqa: E731
        lrs = [float(v) for v in a.lrs.split(",")] if a.lrs else [editor.options.invert_lr]
        curve(editor, faces, ints(a.steps), lrs, ints(a.restarts), a.prior, a.bf16)
    if not a.skip_speed:
        modes = a.modes or ("fp32" if editor.stylegan else "fp32,bf16,channels_last,bf16+channels_last")
        speed(editor, faces, modes.split(","))


if __name__ == "__main__":
    main()
