"""Speed of MobileStyleGAN in torch (faceattr.nets) per working resolution and batch size, with
OpenVINO's forward beside it, and the PSNR that bf16 costs.

    .venv/bin/python benchmarks/stylegan_speed.py [--repeats 3] [--compile]

Rows: forward (no grad) and forward+backward (gradient of the mean pixel to a W+ latent, as S31 and
S32 take it) at 128, 256, 512 and 1024 px for batches of 1 and 8; at 128 and 256 px both the exact
path (1024 face without its last wavelet step, box-filtered) and the learnt early exit
(`stylegan_heads`). Times are the best of --repeats, wall clock and CPU seconds of this process
(the machine may be shared: its load average is printed before and after). PSNR is over [-1, 1]
(peak-to-peak 2).
"""

import argparse
import os
import time

import numpy as np
import torch

from faceattr.nets import generator, stylegan

BUDGET_GIB = 6
# peak memory of forward+backward per sample (ru_maxrss, batch 1 and 2): the exact path runs all blocks
GIB_PER_SAMPLE = {"torch exact": 1.2, "torch.compile exact": 1.2, "torch early exit": 0.4}


def load():
    return "load average " + " / ".join(f"{x:.1f}" for x in os.getloadavg()) + f" on {os.cpu_count()} CPUs"


def best(fn, repeats):
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus)


def psnr(a, b):
    return (10 * torch.log10(4 / (a.float() - b.float()).square().mean())).item()


def openvino_synthesis(batch, precision):
    import openvino as ov

    core = ov.Core()
    model = stylegan.read_ir(stylegan.weights_folder(), "SynthesisNetwork")
    model.reshape({"style": [batch, stylegan.STYLE_DIM]})
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": precision})
    request = compiled.create_infer_request()
    return lambda w: request.infer({"style": w.numpy()})[compiled.outputs[-1]]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (its cold compile included)")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {load()}", flush=True)
    exact = generator.MobileStyleGAN(wplus=True)
    variants = [("torch exact", exact), ("torch early exit", generator.MobileStyleGAN(wplus=True, early_exit=True))]
    if args.compile:
        variants.append(("torch.compile exact", generator.MobileStyleGAN(wplus=True, compile=True)))
    styles = exact.sample_latents(list(range(300000, 300008)))

    print("\n| resolution | batch | path | forward s (CPU s) | forward+backward s (CPU s) |", flush=True)
    print("|---|---|---|---|---|")
    for r in (128, 256, 512, 1024):
        for b in (1, 8):
            w = styles[:b]
            for name, g in variants:
                if name == "torch early exit" and str(r) not in g.heads:
                    continue
                if name.startswith("torch.compile"):  # each new shape compiles; the cache is on disk
                    with torch.no_grad():
                        cold = best(lambda: g.synthesize(w, r), 1)[0]
                    print(f"| {r} | {b} | {name}: first forward (compiles) | {cold:.2f} | |", flush=True)
                with torch.no_grad():
                    fwd = best(lambda: g.synthesize(w, r), args.repeats)

                def step():
                    latent = w.clone().requires_grad_(True)
                    g.synthesize(latent, r).mean().backward()

                fits = b * GIB_PER_SAMPLE[name] < BUDGET_GIB
                back = best(step, args.repeats) if fits else None
                back_txt = f"{back[0]:.2f} ({back[1]:.2f})" if back else f"not run: ~{b * GIB_PER_SAMPLE[name]:.0f} GiB"
                print(f"| {r} | {b} | {name} | {fwd[0]:.2f} ({fwd[1]:.2f}) | {back_txt} |", flush=True)
        print(f"({load()})", flush=True)
    for b in (1, 8):
        for precision in ("f32", "bf16"):
            run = openvino_synthesis(b, precision)
            w = styles[:b].mean(1)  # OpenVINO takes W
            run(w)  # first inference allocates
            t = best(lambda: run(w), args.repeats)
            print(f"| 1024 | {b} | OpenVINO {precision} | {t[0]:.2f} ({t[1]:.2f}) | (forward only) |", flush=True)

    w = styles[:2]
    with torch.no_grad():
        ref = exact.synthesize(w, 1024)
        with torch.autocast("cpu", torch.bfloat16):
            half = exact.synthesize(w, 1024)
    ov = np.concatenate([openvino_synthesis(1, "bf16")(v[None]) for v in w.mean(1)])
    print(f"\nPSNR vs torch fp32 at 1024 px: torch bf16 autocast {psnr(half, ref):.1f} dB, "
          f"OpenVINO bf16 {psnr(torch.from_numpy(ov), ref):.1f} dB")
    print(load())


if __name__ == "__main__":
    main()
