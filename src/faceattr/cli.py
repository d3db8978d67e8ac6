"""Command line: `faceattr data|train|sample|eval|demo ...`. Thin: parse, call one function, report."""

import argparse
import dataclasses
import sys
from pathlib import Path

from faceattr.errors import FaceattrError


def parse_seeds(text: str) -> list[int]:
    """'0-9999' or '1,5,7-9' -> list of ints."""
    seeds = []
    try:
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            seeds.extend(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad seed list {text!r}: use e.g. 0-9999 or 1,5,7-9") from None
    return seeds


def cmd_data_synth(args):
    from faceattr.data import synth

    synth.synthesize(args.out, args.seeds, size=args.size, from_cache=args.from_cache)


def cmd_data_label(args):
    from faceattr.data import label

    label.label_corpus(args.root, sheets_dir=args.sheets)


def add_dataclass_options(parser, cls, skip=()):
    """One --option per config field (plain dataclasses are our configs: no framework)."""
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.type in (bool, "bool"):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default)
        else:
            parser.add_argument(flag, type=type(f.default), default=f.default)


def cmd_train_gan(args):
    from faceattr.training.gan import GanConfig, train

    fields = {f.name for f in dataclasses.fields(GanConfig)}
    train(GanConfig(**{k: v for k, v in vars(args).items() if k in fields}))


def cmd_sample(args):
    from faceattr.generate import sample_grid

    sample_grid(args.output, n=args.n, seed=args.seed, checkpoint=args.checkpoint, truncation=args.truncation)


def cmd_eval_gan(args):
    import json

    from faceattr.fileio import write_text
    from faceattr.metrics.realism import evaluate_gan

    result = evaluate_gan(args.data, args.checkpoint, n=args.n, ceiling=args.ceiling, seed=args.seed)
    text = json.dumps(result, indent=2)
    print(text)
    if args.output:
        write_text(args.output, text + "\n")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="faceattr", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="build and label the face corpus").add_subparsers(dest="data_command", required=True)
    s = data.add_parser("synth", help="generate the default corpus with MobileStyleGAN (random-face weights)")
    s.add_argument("--out", type=Path, required=True, help="corpus folder (CelebA layout)")
    s.add_argument("--seeds", type=parse_seeds, default=parse_seeds("0-9999"), help="e.g. 0-9999")
    s.add_argument("--size", type=int, default=128, help="output resolution in pixels")
    s.add_argument("--from-cache", type=Path, metavar="DIR",
                   help="unpack these seeds from a prebuilt cache (tar shards) instead of generating")
    s.set_defaults(func=cmd_data_synth)
    s = data.add_parser("label", help="label Male / Young / Smiling with offline judges; write CelebA files")
    s.add_argument("root", type=Path)
    s.add_argument("--sheets", type=Path, help="also write contact sheets per attribute to this folder")
    s.set_defaults(func=cmd_data_label)

    train = sub.add_parser("train", help="train the networks").add_subparsers(dest="train_command", required=True)
    from faceattr.training.gan import GanConfig

    s = train.add_parser("gan", help="train G-Net against D-Net (patent S11-S14); resumes from OUT/checkpoint.pt")
    s.add_argument("--data", required=True, help="corpus folder (CelebA layout or images + attributes.csv)")
    s.add_argument("--out", required=True, help="run folder: checkpoint, samples, metrics.csv, tensorboard/")
    add_dataclass_options(s, GanConfig, skip=("data", "out"))
    s.set_defaults(func=cmd_train_gan)

    s = sub.add_parser("sample", help="draw faces from G-Net into a grid image")
    s.add_argument("-n", type=int, default=64, help="number of faces")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--truncation", type=float, default=1.0, help="scale of z (1 = the training prior)")
    s.add_argument("--checkpoint", type=Path, help="a run's checkpoint.pt or a .safetensors G-Net (default: shipped)")
    s.add_argument("-o", "--output", type=Path, required=True)
    s.set_defaults(func=cmd_sample)

    ev = sub.add_parser("eval", help="measure the models").add_subparsers(dest="eval_command", required=True)
    s = ev.add_parser("gan", help="G-Net realism: YuNet detection rate and FD-SFace, with floor and ceiling")
    s.add_argument("--data", required=True, help="corpus folder: its test split is the reference")
    s.add_argument("--checkpoint", type=Path, help="G-Net to judge (default: shipped)")
    s.add_argument("--ceiling", type=Path, help="an early checkpoint or snapshot, for the ceiling")
    s.add_argument("-n", type=int, default=1000, help="samples (and reference faces)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("-o", "--output", type=Path, help="also write the JSON here")
    s.set_defaults(func=cmd_eval_gan)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except FaceattrError as e:
        print(f"faceattr: error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("faceattr: interrupted", file=sys.stderr)
        sys.exit(130)
