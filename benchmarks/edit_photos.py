"""Male <-> female edits of real photos under each addition to the patent's path (issue #5's bars).

    python benchmarks/edit_photos.py --enet RUN/checkpoint.pt --features GANRUN/checkpoint.pt \
        --encoder ENCRUN/encoder.safetensors --out bench_edits.json [--variants patent,defaults]

Photos: `faceattr.eval.edits.real_photos` (astronaut, ORL faces, damefaces). For every variant:
share of Male edits the age/gender judge agrees with (`eval.edits.measure_edits`), median SFace
cosine input/output, and the seconds of `Editor.edit` on one photo and on a batch of 32.
"""

import argparse
import json
import time

from faceattr.data.images import load_photo
from faceattr.edit.pipeline import Editor
from faceattr.eval.edits import measure_edits, real_photos

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
    if args.encoder:
        v["+encoder"] = {**PATENT, "invert_restarts": 1, "invert_steps": args.encoder_steps, "_encoder": True}
    v["defaults"] = {"_encoder": bool(args.encoder)}
    for gain in (1.0, 2.0, 3.0):  # how far the change may go: the paste region and a gain on it
        v[f"head+gain{gain:g}"] = {"_encoder": bool(args.encoder), "mask": "head", "transfer_gain": gain}
    return v


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gnet", help="default: shipped")
    p.add_argument("--enet", help="default: shipped")
    p.add_argument("--encoder", help="inversion encoder .safetensors (for the +encoder and defaults rows)")
    p.add_argument("--encoder-steps", type=int, default=50)
    p.add_argument("--features", help="GAN run checkpoint.pt: D-Net features for the +features row")
    p.add_argument("--feature-weight", type=float, default=0.1)
    p.add_argument("--variants", help="comma-separated subset of the rows")
    p.add_argument("--row", action="append", default=[], metavar="NAME:KEY=VALUE,...",
                   help="an extra row of Editor options on top of the defaults, e.g. strong:search_goal=0.999")
    p.add_argument("--orl-per-person", type=int, default=1)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--out", default="bench_edits.json")
    args = p.parse_args()

    photos = real_photos(args.orl_per_person)
    table = variants(args)
    for spec in args.row:
        name, _, items = spec.partition(":")
        table[name] = {"_encoder": bool(args.encoder)}
        for item in filter(None, items.split(",")):
            key, _, value = item.partition("=")
            table[name][key] = json.loads(value) if value[:1] in "-.0123456789tfn[{" else value
    chosen = args.variants.split(",") if args.variants else list(table)
    chosen += [spec.partition(":")[0] for spec in args.row if spec.partition(":")[0] not in chosen]
    report = {"photos": len(photos), "variants": {}}
    for name in chosen:
        options = dict(table[name])
        encoder = args.encoder if options.pop("_encoder", False) else False
        editor = Editor(args.gnet, args.enet, encoder, **options)
        batch = [load_photo(p) for p in photos[:args.batch]]
        editor.edit(batch[:1], {"Male": 1})  # warm-up: first-call costs are not per-photo costs
        seconds = {}
        for name_, part in (("one_photo", batch[:1]), (f"batch_{len(batch)}", batch)):
            t = time.perf_counter()
            editor.edit(part, {"Male": 1})
            seconds[name_] = round(time.perf_counter() - t, 3)
        m = measure_edits(editor, photos, ("Male",), batch=args.batch)
        m.pop("pairs")
        m.update(seconds=seconds, options={k: v for k, v in table[name].items()})
        report["variants"][name] = m
        s, d = m["summary"]["Male"]["all"], m["summary"]["Male"]
        print(f"{name:18s} n={s['n']} judge_agrees={s['judge_agrees']:.3f} "
              f"(to_female {d.get('to_female', {}).get('judge_agrees', float('nan')):.3f}, "
              f"to_male {d.get('to_male', {}).get('judge_agrees', float('nan')):.3f}) "
              f"sface_median={s['sface_cosine_median']:.3f} face_found={s['output_face_found']:.2f} "
              f"psnr_median={s['psnr_db_median']:.2f} seconds={seconds}", flush=True)
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
