"""Command line: `faceattr data|train|export|sample|eval|edit|serve ...`. Thin: parse, call one function, report."""

import argparse
import dataclasses
import sys
import typing
from pathlib import Path

from faceattr.data.images import MAX_PIXELS
from faceattr.errors import FaceattrError
from faceattr.memory import keep_freed_memory


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
    """One --option per config field (plain dataclasses are our configs: no framework); its type from the
    default (or, for a default of None, the annotation), its help and choices from the field's metadata."""
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        kind = type(f.default) if f.default is not None else next(
            a for a in typing.get_args(f.type) if a is not type(None))
        extra = {k: f.metadata[k] for k in ("help", "choices") if k in f.metadata}
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default, **extra)
        else:
            parser.add_argument(flag, type=kind, default=f.default, **extra)


def cmd_train_gan(args):
    from faceattr.train.gan import GanConfig, train

    fields = {f.name for f in dataclasses.fields(GanConfig)}
    train(GanConfig(**{k: v for k, v in vars(args).items() if k in fields}))


def cmd_train_encoder(args):
    from faceattr.train.encoder import EncoderConfig, train

    fields = {f.name for f in dataclasses.fields(EncoderConfig)}
    train(EncoderConfig(**{k: v for k, v in vars(args).items() if k in fields}))


def cmd_train_classifier(args):
    from faceattr.train.enet import ClassifierConfig, train

    fields = {f.name for f in dataclasses.fields(ClassifierConfig)}
    train(ClassifierConfig(**{k: v for k, v in vars(args).items() if k in fields}, attrs=tuple(args.attr or ())))


def cmd_train_directions(args):
    from faceattr.train.directions import DirectionsConfig, train

    print(train(DirectionsConfig(args.data, args.out, args.enet, args.n, args.l2, args.holdout)))


def cmd_export_classifier(args):
    from faceattr.weights import export_classifier

    print(export_classifier(args.checkpoint, args.output))


def cmd_export_gan(args):
    from faceattr.weights import export_generator

    export_generator(args.checkpoint, args.output)
    print(args.output)


def cmd_sample(args):
    from faceattr.imaging import save_grid
    from faceattr.nets.gnet import sample
    from faceattr.weights import load_generator

    if args.n < 1:
        raise FaceattrError("-n must be at least 1")
    save_grid(sample(load_generator(args.checkpoint), args.n, args.seed, args.truncation), args.output)


def cmd_eval_fooling(args):
    import json

    from faceattr.weights import load_classifier
    from faceattr.fileio import write_text
    from faceattr.weights import load_generator
    from faceattr.eval.fooling import fooling_rates

    G, E = load_generator(args.gnet), load_classifier(args.enet)
    result = {attr: fooling_rates(G, E, attr, n=args.n, steps=args.steps, seed=args.seed, pool_factor=args.pool_factor)
              for attr in (args.attr or E.attr_names)}
    text = json.dumps(result, indent=2)
    print(text)
    if args.output:
        write_text(args.output, text + "\n")


def cmd_eval_report(args):
    from faceattr.eval.report import build_report

    if args.out is None:
        raise FaceattrError("eval: give --out DIR for the report, or a subcommand: gan, fooling")
    m = build_report(args.out, data=args.data, photos=args.photos, n=args.n, gnet=args.gnet, enet=args.enet,
                     encoder=False if args.no_encoder else args.encoder, quick=args.quick,
                     gnets=args.gnets, directions=args.directions,
                     log=lambda line: print(line, file=sys.stderr, flush=True))
    print(f"{args.out / 'index.html'}, {args.out / 'metrics.json'} ({m['timing']['seconds']['total']:.0f} s)")


def cmd_eval_gan(args):
    import json

    from faceattr.fileio import write_text
    from faceattr.eval.realism import evaluate_gan

    result = evaluate_gan(args.data, args.checkpoint, n=args.n, ceiling=args.ceiling, seed=args.seed)
    text = json.dumps(result, indent=2)
    print(text)
    if args.output:
        write_text(args.output, text + "\n")


def parse_edits(attrs, to) -> dict:
    """--attr NAME=0|1 (repeatable, or comma-separated) or --attr NAME ... --to 0|1 -> {NAME: 0|1}
    (edit.options.parse_edits)."""
    from faceattr.edit.options import parse_edits

    if not attrs:
        raise FaceattrError("name an attribute to change: --attr NAME --to 0|1 or --attr NAME=0|1")
    items = []
    for item in (part for a in attrs for part in a.split(",") if part.strip()):
        name, eq, value = item.partition("=")
        if not eq and to is None:
            raise FaceattrError(f"--attr {name}: say what to change it to: --to 0|1 or --attr {name}=0|1")
        items.append((name, value if eq else str(to)))
    return parse_edits(items)


def edit_options(args):
    from faceattr.edit.options import EditOptions

    return EditOptions(**{f.name: getattr(args, f.name) for f in dataclasses.fields(EditOptions)})


def cmd_edit(args):
    from faceattr.edit.files import edit_files, output_paths
    from faceattr.edit.pipeline import Editor

    edits = parse_edits(args.attr, args.to)
    options = edit_options(args)
    outputs = output_paths(args.inputs, args.output, args.out_dir)
    editor = Editor(args.gnet, args.enet, False if args.no_encoder else args.encoder, args.directions,
                    device=args.device, options=options)
    failures = edit_files(editor, args.inputs, outputs, edits, debug=args.debug, report=args.report, batch=args.batch)
    if failures:
        print(f"faceattr: {len(failures)} of {len(args.inputs)} photo(s) failed:", file=sys.stderr)
        print("\n".join(failures), file=sys.stderr)
        sys.exit(1)


def cmd_serve(args):
    from faceattr.serve.app import serve

    editor_args = {"gnet": args.gnet, "enet": args.enet, "encoder": False if args.no_encoder else args.encoder}
    serve(args.host, args.port, editor_args, max_upload=int(args.max_upload_mb * 2**20), workers=args.workers,
          threads=args.threads, queue_size=args.queue, time_limit=args.time_limit,
          max_pixels=int(args.max_megapixels * 1e6))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="faceattr", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="build and label the face corpus")
    data = data.add_subparsers(dest="data_command", required=True)
    s = data.add_parser("synth", help="generate the default corpus with MobileStyleGAN (random-face weights)")
    s.add_argument("--out", type=Path, required=True, help="corpus folder (CelebA layout)")
    s.add_argument("--seeds", type=parse_seeds, default=parse_seeds("0-9999"), help="e.g. 0-9999")
    s.add_argument("--size", type=int, default=128, help="output resolution in pixels")
    s.add_argument("--from-cache", type=Path, metavar="DIR",
                   help="unpack these seeds from a prebuilt cache (tar shards) instead of generating")
    s.set_defaults(func=cmd_data_synth)
    s = data.add_parser("label", help="label Male / Young / Smiling with offline judges; write CelebA files")
    s.add_argument("root", type=Path, help="corpus folder (CelebA layout); only images not yet judged are read")
    s.add_argument("--sheets", type=Path, help="also write contact sheets per attribute to this folder")
    s.set_defaults(func=cmd_data_label)

    train = sub.add_parser("train", help="train the networks").add_subparsers(dest="train_command", required=True)
    from faceattr.train.config import ClassifierConfig, EncoderConfig, GanConfig  # light: no torch

    s = train.add_parser("gan", help="train G-Net against D-Net (patent S11-S14); resumes from OUT/checkpoint.pt")
    s.add_argument("--data", required=True, help="corpus folder (CelebA layout or images + attributes.csv)")
    s.add_argument("--out", required=True, help="run folder: checkpoint, samples, metrics.csv, tensorboard/")
    add_dataclass_options(s, GanConfig, skip=("data", "out"))
    s.set_defaults(func=cmd_train_gan)
    s = train.add_parser("encoder", help="train the inversion encoder (image -> z) on G-Net's samples; resumes")
    s.add_argument("--gnet", required=True, help="G-Net: .safetensors or a GAN run's checkpoint.pt")
    s.add_argument("--out", required=True, help="run folder: checkpoint, encoder.safetensors, metrics.csv")
    add_dataclass_options(s, EncoderConfig, skip=("gnet", "out"))
    s.set_defaults(func=cmd_train_encoder)
    s = train.add_parser("classifier", help="train E-Net, the attribute judge (patent S21-S23); resumes from "
                         "OUT/checkpoint.pt; then `faceattr export classifier`")
    s.add_argument("--data", required=True, help="labelled corpus folder (CelebA layout or images + attributes.csv)")
    s.add_argument("--out", required=True, help="run folder: checkpoint, metrics.csv, tensorboard/, test_metrics.json")
    s.add_argument("--attr", action="append", metavar="NAME",
                   help="attribute to judge; repeat for several (default: every attribute of the corpus)")
    add_dataclass_options(s, ClassifierConfig, skip=("data", "out", "attrs"))
    s.set_defaults(func=cmd_train_classifier)
    s = train.add_parser("directions", help="S32's attribute directions in MobileStyleGAN's W from E-Net's verdicts "
                         "on a corpus drawn by `faceattr data synth` (its latents are known from the seeds)")
    s.add_argument("--data", required=True, help="corpus folder from `faceattr data synth`")
    s.add_argument("--out", required=True, help="the .safetensors to write (its model card .md beside it)")
    s.add_argument("--enet", default="", help="the E-Net whose verdicts are pooled (default: shipped)")
    s.add_argument("--n", type=int, default=6000, help="faces read, the first N seeds")
    s.add_argument("--l2", type=float, default=1e-3, help="L2 weight of the logistic regressions")
    s.add_argument("--holdout", type=float, default=0.2, help="share of the faces kept out of the fit, to measure it")
    s.set_defaults(func=cmd_train_directions)

    s = sub.add_parser("sample", help="draw faces from G-Net into a grid image")
    s.add_argument("-n", type=int, default=64, help="number of faces")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--truncation", type=float, default=1.0, help="scale of z (1 = the training prior)")
    s.add_argument("--checkpoint", type=Path, help="a run's checkpoint.pt or a .safetensors G-Net (default: shipped)")
    s.add_argument("-o", "--output", type=Path, required=True)
    s.set_defaults(func=cmd_sample)

    ev = sub.add_parser("eval", help="the report on the models and the edits (--out DIR), or one measurement",
                        description="With --out: measure G-Net, E-Net, S31 inversion and edits of real photos "
                        "(judged by independent models), with time and memory, into DIR/index.html (self-contained) "
                        "and DIR/metrics.json. The subcommands measure one thing.")
    ev.add_argument("--out", type=Path, help="report folder: index.html, metrics.json")
    ev.add_argument("--data", type=Path, help="labelled corpus: G-Net reference faces, E-Net test split, corpus "
                    "faces to invert (without it those sections are skipped)")
    ev.add_argument("--photos", type=Path, help="folder of real photos (default: those shipped in packages: "
                    "skimage's astronaut, ORL faces, damefaces)")
    ev.add_argument("-n", "--n", type=int, help="G-Net samples and reference faces (default 1000; 64 with --quick)")
    ev.add_argument("--gnet", type=Path, help="the patent G-Net: .safetensors or run checkpoint.pt (default: shipped)")
    ev.add_argument("--gnets", nargs="+", choices=("mobilestylegan", "patent"),
                    help="the editors measured side by side (default: both)")
    ev.add_argument("--directions", type=Path, help="MobileStyleGAN's S32 directions (default: shipped)")
    ev.add_argument("--enet", type=Path, help="E-Net .safetensors or classifier run checkpoint.pt (default: shipped)")
    enc = ev.add_mutually_exclusive_group()
    enc.add_argument("--encoder", type=Path, help="inversion encoder for the S31 start (default: shipped, if any)")
    enc.add_argument("--no-encoder", action="store_true", help="start S31 from random z (the patent)")
    ev.add_argument("--quick", action="store_true", help="a smoke run (under 2 minutes): fewer faces and photos, "
                    "shorter S31")
    ev.set_defaults(func=cmd_eval_report)
    ev = ev.add_subparsers(dest="eval_command")
    s = ev.add_parser("gan", help="G-Net realism: YuNet detection rate and FD-SFace, with floor and ceiling")
    s.add_argument("--data", required=True, help="corpus folder: its test split is the reference")
    s.add_argument("--checkpoint", type=Path, help="G-Net to judge (default: shipped)")
    s.add_argument("--ceiling", type=Path, help="an early checkpoint or snapshot, for the ceiling")
    s.add_argument("-n", type=int, default=1000, help="samples (and reference faces)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("-o", "--output", type=Path, help="also write the JSON here")
    s.set_defaults(func=cmd_eval_gan)

    s = ev.add_parser("fooling", help="E-Net steering: plain S32 on G-Net samples both ways; how often E-Net flips "
                      "and the corpus labeller agrees, and how often E-Net alone is fooled")
    s.add_argument("--gnet", type=Path, help="G-Net (default: shipped)")
    s.add_argument("--enet", type=Path, help="E-Net .safetensors or classifier run checkpoint.pt (default: shipped)")
    s.add_argument("--attr", action="append", metavar="NAME", help="attribute to test; repeat (default: all)")
    s.add_argument("-n", type=int, default=200, help="edits per direction")
    s.add_argument("--steps", type=int, default=60, help="S32 steps")
    s.add_argument("--pool-factor", type=int, default=10,
                   help="draw this many x n samples to find n per direction (rare attributes need more)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("-o", "--output", type=Path, help="also write the JSON here")
    s.set_defaults(func=cmd_eval_fooling)

    export = sub.add_parser("export", help="make shippable weights")
    export = export.add_subparsers(dest="export_command", required=True)
    s = export.add_parser("classifier", help="finished E-Net runs -> one .safetensors (best-validation weights) with "
                          "its model card in the metadata and in a .md beside it")
    s.add_argument("checkpoint", type=Path, nargs="+", help="the run's checkpoint.pt; several: one E-Net group in "
                   "which each attribute comes from the first run that judges it")
    s.add_argument("-o", "--output", type=Path, required=True, help="e.g. src/faceattr/weights/enet.safetensors")
    s.set_defaults(func=cmd_export_classifier)
    s = export.add_parser("gan", help="a G-Net run's checkpoint.pt -> .safetensors (EMA weights, fp16)")
    s.add_argument("checkpoint", type=Path, help="the run's checkpoint.pt")
    s.add_argument("-o", "--output", type=Path, required=True, help="e.g. src/faceattr/weights/gnet.safetensors")
    s.set_defaults(func=cmd_export_gan)

    s = sub.add_parser("edit", help="change face attributes in photos (patent S31-S33 with detection, alignment "
                       "and paste-back)", description="Edit face attributes in photos. All faces of a batch of "
                       "photos are inverted and searched together. Each output is written atomically; a photo "
                       "that fails (unreadable, no face found) is listed at the end and the exit code is 1.")
    s.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="photo file(s)")
    out = s.add_mutually_exclusive_group(required=True)
    out.add_argument("-o", "--output", type=Path, help="output file (one input only); format from its extension")
    out.add_argument("--out-dir", type=Path, help="folder for the outputs, named like the inputs")
    s.add_argument("--attr", action="append", metavar="NAME[=0|1]",
                   help="attribute to change; repeat or separate with commas for several (--attr Male=0,Smiling=1)")
    s.add_argument("--to", type=int, choices=(0, 1), help="target for every --attr given without =: 1 add, 0 remove")
    s.add_argument("--debug", action="store_true",
                   help="also write OUTPUT.debug.png: aligned original | G(z1) | G(z2) | result, a row per face")
    s.add_argument("--report", action="store_true",
                   help="also write OUTPUT.json beside each output: scores before/after, inversion MSE/PSNR, "
                        "steps and seconds per stage for each face")
    s.add_argument("--gnet", default="mobilestylegan",
                   help="mobilestylegan (default: FFHQ MobileStyleGAN from the random-face package), patent (the "
                        "shipped 64 px G-Net of S11-S14) or a patent G-Net's .safetensors / run checkpoint.pt")
    s.add_argument("--enet", type=Path, help="E-Net .safetensors or classifier run checkpoint.pt (default: shipped)")
    s.add_argument("--directions", type=Path, help="S32 directions for MobileStyleGAN (default: shipped)")
    enc = s.add_mutually_exclusive_group()
    enc.add_argument("--encoder", type=Path, help="S31 start encoder (default: the shipped one of the G-Net, if any)")
    enc.add_argument("--no-encoder", action="store_true", help="start S31 from the mean latent / random z (the patent)")
    s.add_argument("--batch", type=int, default=8, help="photos per batch (all their faces optimised together)")
    s.add_argument("--device", default="cpu")
    from faceattr.edit.options import EditOptions  # light: no torch

    add_dataclass_options(s, EditOptions)
    s.set_defaults(func=cmd_edit)

    s = sub.add_parser("serve", help="HTTP API and web page for editing photos (the page at http://HOST:PORT/)",
                       description="Serve POST /v1/edit, /v1/jobs, GET /v1/attributes, /healthz, /openapi.json and "
                       "the web page. Edits run in worker processes, each with its own editor, loaded at start.")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--gnet", type=Path, help="G-Net .safetensors or GAN run checkpoint.pt (default: shipped)")
    s.add_argument("--enet", type=Path, help="E-Net .safetensors or classifier run checkpoint.pt (default: shipped)")
    enc = s.add_mutually_exclusive_group()
    enc.add_argument("--encoder", type=Path, help="inversion encoder for the S31 start (default: shipped, if any)")
    enc.add_argument("--no-encoder", action="store_true", help="start S31 from random z (the patent)")
    s.add_argument("--workers", type=int, help="edits at once, one process each (default: one per core, at most 8, "
                   "so that workers x threads <= cores)")
    s.add_argument("--threads", type=int, help="torch threads per worker (default: the cores / the workers, "
                   "e.g. 2 cores: 2 workers x 1 thread)")
    s.add_argument("--queue", type=int, default=8, help="edits that may wait for a worker; more get 429")
    s.add_argument("--time-limit", type=float, default=60.0, help="seconds per edit, waiting included: a request "
                   "expected to finish later gets 429 with Retry-After at once; one that runs past it, 504")
    s.add_argument("--max-upload-mb", type=float, default=10.0, help="largest photo file accepted (413 above)")
    s.add_argument("--max-megapixels", type=float, default=MAX_PIXELS / 1e6,
                   help="largest photo accepted, in megapixels (413 above; default: the limit of every photo read)")
    s.set_defaults(func=cmd_serve)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    keep_freed_memory()
    try:
        args.func(args)
    except FaceattrError as e:
        print(f"faceattr: error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("faceattr: interrupted", file=sys.stderr)
        sys.exit(130)
