"""Label a CelebA-layout corpus with offline judges (the labelled faces of patent S21).

ROOT/img_align_celeba/* -> ROOT/labels_raw.csv (judge outputs, resumable),
ROOT/list_attr_celeba.txt (Male, Young, Smiling as 1/-1), ROOT/list_eval_partition.txt
(the fixed hash split), and optionally contact sheets for checking the labels by eye.

Rules (reasons in docs/DATA.md); each judge reads the face and its mirror image and averages the two
readings (`judges.labeller.with_mirrors`: a single reading changed 3.3% of the Male labels under mirroring):
- Male: P(male) >= 0.5 (dlib gender network, `judges.labeller.AgeGenderJudge`).
- Young: expected apparent age < YOUNG_BELOW years (dlib age network).
- Smiling: P(happy) >= 0.5 (FER2013 mini-Xception, `judges.labeller.SmileJudge`).
"""

import csv
import io
import math
import random
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

from faceattr.data.celeba import default_split, write_attrs, write_partition
from faceattr.errors import FaceattrError
from faceattr.fileio import save_image, write_text

IMAGE_DIR = "img_align_celeba"
RAW_NAME = "labels_raw.csv"
RAW_COLUMNS = ("filename", "p_male", "age", "p_smile", "face_found", "views")
VIEWS = 2  # each face is read as it is and mirrored, and the readings averaged (`judges.labeller.with_mirrors`)
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
ATTRIBUTES = ("Male", "Young", "Smiling")
YOUNG_BELOW = 40.0
AGE_SOFTNESS = 2.5  # years: the soft Young target is sigmoid((YOUNG_BELOW - age) / AGE_SOFTNESS)
BATCH = 64
SAVE_EVERY = 1024  # images between checkpoints of labels_raw.csv
SHEET_FACES = 120  # faces per contact sheet (per attribute value)
SHEET_COLS = 12
TILE = 112


def list_images(folder: Path) -> list[str]:
    """Image file names directly in `folder` (CelebA keeps them flat), hidden files skipped."""
    return sorted(p.name for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTS)


def read_raw(path: Path) -> dict[str, tuple]:
    """labels_raw.csv -> {filename: (p_male, age, p_smile, face_found)}; {} if absent or stale."""
    if not path.is_file():
        return {}
    rows = {}
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if tuple(header or ()) != RAW_COLUMNS:
            warnings.warn(f"{path} has columns {header}, not {list(RAW_COLUMNS)}: labelling anew", stacklevel=2)
            return {}
        for n, row in enumerate(reader, start=2):
            try:
                name, pm, age, ps, found, views = row
                if int(views) != VIEWS:
                    raise ValueError
                rows[name] = (float(pm), float(age), float(ps), found == "1")
            except ValueError:
                raise FaceattrError(f"{path}: line {n} is malformed; delete the file to relabel") from None
    return rows


def write_raw(path: Path, raw: dict[str, tuple]):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(RAW_COLUMNS)
    for name in sorted(raw):
        pm, age, ps, found = raw[name]
        w.writerow([name, f"{pm:.6f}", f"{age:.3f}", f"{ps:.6f}", int(found), VIEWS])
    write_text(path, buf.getvalue())


def labels_from_raw(p_male, age, p_smile) -> np.ndarray:
    """Judge outputs -> int8 (N, 3) of 1/-1 in ATTRIBUTES order."""
    on = np.stack([np.asarray(p_male) >= 0.5, np.asarray(age) < YOUNG_BELOW, np.asarray(p_smile) >= 0.5], axis=1)
    return np.where(on, 1, -1).astype(np.int8)


def soft_labels_from_raw(p_male, age, p_smile) -> np.ndarray:
    """Judge outputs -> float32 (N, 3) in [0, 1], ATTRIBUTES order: the judges' own probabilities, and
    for Young a sigmoid of the age's distance to YOUNG_BELOW. Thresholded at 0.5 they are `labels_from_raw`."""
    young = 1 / (1 + np.exp(-(YOUNG_BELOW - np.asarray(age, np.float64)) / AGE_SOFTNESS))
    return np.stack([np.asarray(p_male), young, np.asarray(p_smile)], axis=1).astype(np.float32)


def read_soft_labels(root, filenames, attrs) -> np.ndarray:
    """Soft targets (`soft_labels_from_raw`) of these corpus files from ROOT/labels_raw.csv, (N, len(attrs))."""
    path = Path(root) / RAW_NAME
    raw = read_raw(path)
    missing = [n for n in filenames if n not in raw]
    if not raw or missing:
        raise FaceattrError(f"soft labels need the labeller's outputs for every face in {path} "
                            f"({len(missing) if raw else 'all'} missing): run `faceattr data label {root}`")
    unknown = [a for a in attrs if a not in ATTRIBUTES]
    if unknown:
        raise FaceattrError(f"the labeller gives soft labels for {', '.join(ATTRIBUTES)}, not {', '.join(unknown)}")
    cols = np.array([raw[n][:3] for n in filenames], np.float64).reshape(-1, 3)
    return soft_labels_from_raw(cols[:, 0], cols[:, 1], cols[:, 2])[:, [ATTRIBUTES.index(a) for a in attrs]]


def _judge_all(folder: Path, names: list[str], raw: dict, raw_path: Path):
    from faceattr.judges.labeller import AgeGenderJudge, SmileJudge, face_boxes

    ag, smile = AgeGenderJudge(), SmileJudge()
    since_save = 0
    with tqdm(total=len(names), desc="labelling", unit="img", smoothing=0.05) as bar:
        for i in range(0, len(names), BATCH):
            batch, images = [], []
            for name in names[i:i + BATCH]:
                try:
                    with Image.open(folder / name) as im:
                        images.append(np.asarray(im.convert("RGB")))
                    batch.append(name)
                except OSError as e:
                    warnings.warn(f"skipping unreadable image {folder / name}: {e}", stacklevel=2)
            if images:
                boxes, found = face_boxes(images)
                p_male, age = ag.judge(images, boxes)
                p_smile = smile.judge(images, boxes)
                for j, name in enumerate(batch):
                    raw[name] = (float(p_male[j]), float(age[j]), float(p_smile[j]), bool(found[j]))
            bar.update(len(names[i:i + BATCH]))
            since_save += len(names[i:i + BATCH])
            if since_save >= SAVE_EVERY:
                write_raw(raw_path, raw)
                since_save = 0


def label_corpus(root, sheets_dir=None) -> dict:
    """Judge every image in ROOT/img_align_celeba and write CelebA's label files (see module doc).

    Resumable: judge outputs go to ROOT/labels_raw.csv every SAVE_EVERY images; images already in
    it are not judged again, so changing a rule only costs rewriting the label files.
    Returns a summary {"n", "Male", "Young", "Smiling" (fractions), "no_face"}.
    """
    root = Path(root)
    folder = root / IMAGE_DIR
    if not folder.is_dir():
        raise FaceattrError(f"{folder} does not exist: expected a CelebA-layout corpus "
                            f"(run `faceattr data synth --out {root}` first)")
    names = list_images(folder)
    if not names:
        raise FaceattrError(f"no images in {folder}")
    raw_path = root / RAW_NAME
    raw = read_raw(raw_path)
    todo = [n for n in names if n not in raw]
    if len(todo) < len(names):
        print(f"{len(names) - len(todo)} of {len(names)} images already judged in {raw_path}")
    if todo:
        _judge_all(folder, todo, raw, raw_path)
        write_raw(raw_path, raw)

    labelled = [n for n in names if n in raw]
    if not labelled:
        raise FaceattrError(f"none of the images in {folder} could be read")
    cols = np.array([raw[n][:3] for n in labelled], dtype=np.float64).reshape(-1, 3)
    values = labels_from_raw(cols[:, 0], cols[:, 1], cols[:, 2])
    write_attrs(root / "list_attr_celeba.txt", ATTRIBUTES, labelled, values)
    write_partition(root / "list_eval_partition.txt", labelled, [default_split(n) for n in labelled])

    summary = {"n": len(labelled), "no_face": int(sum(not raw[n][3] for n in labelled))}
    for k, attr in enumerate(ATTRIBUTES):
        summary[attr] = float((values[:, k] == 1).mean())
    print(f"labelled {summary['n']} images: " + ", ".join(f"{a} {summary[a]:.1%}" for a in ATTRIBUTES)
          + f"; no face box found (FFHQ box used) for {summary['no_face']}")
    if sheets_dir is not None:
        for path in write_sheets(folder, labelled, cols, values, Path(sheets_dir)):
            print(f"contact sheet: {path}")
    return summary


# --------------------------------------------------------------------------------------------
# Contact sheets
# --------------------------------------------------------------------------------------------

def _font(size):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType
        return ImageFont.load_default()


def _sheet(folder, names, captions, title) -> Image.Image:
    cap_h, pad, title_h = 16, 4, 30
    rows = math.ceil(len(names) / SHEET_COLS)
    cell_w, cell_h = TILE + pad, TILE + cap_h + pad
    sheet = Image.new("RGB", (SHEET_COLS * cell_w + pad, title_h + rows * cell_h + pad), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((pad, 6), title, fill="black", font=_font(16))
    small = _font(12)
    for i, (name, cap) in enumerate(zip(names, captions)):
        r, c = divmod(i, SHEET_COLS)
        x, y = pad + c * cell_w, title_h + r * cell_h
        with Image.open(folder / name) as im:
            sheet.paste(im.convert("RGB").resize((TILE, TILE), Image.Resampling.LANCZOS), (x, y))
        draw.text((x + 2, y + TILE + 1), f"{i + 1} {cap}", fill="black", font=small)
    return sheet


def write_sheets(folder: Path, names: list[str], cols: np.ndarray, values: np.ndarray, out: Path) -> list[Path]:
    """One PNG per attribute value: SHEET_FACES faces drawn at random (fixed seed) from those with
    that label, ordered by the judge's score and numbered, the score under each face."""
    out.mkdir(parents=True, exist_ok=True)
    score_fmt = {"Male": ("p_male", 0, "{:.2f}"), "Young": ("age", 1, "{:.0f}y"), "Smiling": ("p_smile", 2, "{:.2f}")}
    written = []
    for k, attr in enumerate(ATTRIBUTES):
        label, col, fmt = score_fmt[attr]
        for v, tag in ((1, "yes"), (-1, "no")):
            idx = np.flatnonzero(values[:, k] == v)
            pick = sorted(random.Random(f"{attr}{v}").sample(list(idx), min(SHEET_FACES, len(idx))),
                          key=lambda i: cols[i, col])
            title = (f"{attr} = {v:+d}: {len(pick)} random of {len(idx)} ({len(idx) / len(names):.1%}); "
                     f"caption: number, {label}")
            sheet = _sheet(folder, [names[i] for i in pick], [fmt.format(cols[i, col]) for i in pick], title)
            path = out / f"{attr}_{tag}.png"
            save_image(sheet, path)
            written.append(path)
    return written


class AttributeLabeller:
    """The corpus labeller's rules (this module's: the same judges and thresholds) applied to any faces,
    e.g. G-Net samples: uint8 (N, H, W, 3) -> (labels float32 (N, A) in {0, 1}, face found bool (N,)).
    `soft`: the judges' probabilities instead (`soft_labels_from_raw`).
    Faces under 128 px are upscaled first, as for the realism judges (dlib's HOG box needs ~80 px faces)."""

    def __init__(self, attrs, soft: bool = False):
        unknown = [a for a in attrs if a not in ATTRIBUTES]
        if unknown:
            raise FaceattrError(f"the labeller knows {', '.join(ATTRIBUTES)}, not {', '.join(unknown)}")
        self.attrs, self.cols, self.soft = list(attrs), [ATTRIBUTES.index(a) for a in attrs], soft
        self._ag = self._smile = None

    def __call__(self, images):
        from faceattr.judges.labeller import AgeGenderJudge, SmileJudge, face_boxes
        from faceattr.judges.common import upscale

        images = [upscale(np.ascontiguousarray(im)) for im in images]
        boxes, found = face_boxes(images)
        p_male = age = p_smile = np.zeros(len(images), np.float32)
        if {"Male", "Young"} & set(self.attrs):
            self._ag = self._ag or AgeGenderJudge()
            p_male, age = self._ag.judge(images, boxes)
        if "Smiling" in self.attrs:
            self._smile = self._smile or SmileJudge()
            p_smile = self._smile.judge(images, boxes)
        if self.soft:
            return soft_labels_from_raw(p_male, age, p_smile)[:, self.cols], found
        return (labels_from_raw(p_male, age, p_smile)[:, self.cols] > 0).astype(np.float32), found
