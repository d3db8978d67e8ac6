"""S31 on real photos, both G-Nets side by side (issue 18's bar): how well G(latent) reproduces the photo.

    python benchmarks/invert_photos.py [--tune-steps 0,10,20,30,40] [--attr Male=1]
        [--sheet docs/judge/inversion_sheet.png] [--out docs/judge/bench_inversion.json]

Photos: `faceattr.eval.edits.real_photos` (astronaut, one ORL photo per person, damefaces), the largest face
of each aligned like the corpus. For each editor (the patent G-Net's defaults; MobileStyleGAN's defaults
with each --tune-steps value): S31 exactly as `Editor.edit` runs it for the edit --attr (`Editor.invert`,
then `Editor.tune`, whose locality term looks along that edit's direction),
G(latent) decoded as S33 decodes it. Per editor: PSNR against the aligned photo at 64 px (both box-shrunk
to 64 px, on the valid pixels; grey photos on grey values), SFace cosine between G(latent) and the photo
(YuNet's landmarks in each crop; grey photos: G(latent) greyed), and the seconds of S31 (the latents and
the tuned weights, as `Editor.edit` times its S31 stage) for one photo and per batch of 8, and the same
with the decode of G(latent) at full resolution (S33's first step) added. The sheet: photo | patent G(z1) |
MobileStyleGAN G(w1) at the last --tune-steps.
"""

import argparse
import json
import time

import cv2
import numpy as np
from PIL import Image

from faceattr.data.images import load_photo
from faceattr.edit import align
from faceattr.edit.options import parse_edits
from faceattr.edit.pipeline import Editor, resize
from faceattr.eval.edits import SFACE_SAME_PERSON, real_photos
from faceattr.imaging import grid
from faceattr.judges.identity import FaceEmbedder

COMPARE = 64  # the patent G-Net's native size: both G-Nets compared there


def grey_of(img):
    return cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)


def psnr(a, b, weight) -> float:
    d = (a.astype(np.float64) - b.astype(np.float64)) ** 2
    mse = np.average(d.mean(2), weights=weight)
    return float(10 * np.log10(255.0 ** 2 / max(mse, 1e-10)))


class Identity:
    """SFace cosine of two aligned crops, each embedded by YuNet's landmarks found in it (else as it is)."""

    def __init__(self):
        self.emb = FaceEmbedder()

    def embed(self, crop):
        big = cv2.resize(crop, (256, 256), interpolation=cv2.INTER_CUBIC)
        faces = align.detect_faces(big)
        return self.emb.embed(big, faces[0]) if faces else self.emb.embed(big)

    def cosine(self, a, b) -> float:
        return self.emb.cosine(self.embed(a), self.embed(b))


def s31(editor, crops, valid, grey, edits):
    """S31 as Editor.edit runs it for `edits`, then G(latent) decoded as S33 decodes it -> (G(latent) uint8
    at the crops' size, seconds of S31 (the latents and tuned weights), seconds with the decode)."""
    t = time.perf_counter()
    z1, _ = editor.invert(crops, valid, grey)
    generators, _ = editor.tune(crops, z1, valid, grey, edits)
    found = time.perf_counter() - t
    g1 = editor.decode(z1, crops.shape[1], generators)
    return g1, found, time.perf_counter() - t


def measure(editor, found, identity, edits, batch: int = 8) -> tuple[dict, np.ndarray]:
    """found: (photo, its largest face) of every photo with one."""
    jobs = [align.align(photo, face, editor.resolution) for photo, face in found]
    crops = np.stack([j.crop for j in jobs])
    valid = np.stack([j.valid for j in jobs])
    grey = [align.is_grey(c) for c in crops]
    _, one, one_decoded = s31(editor, crops[:1], valid[:1], grey[:1], edits)
    out, per_batch = [], []
    for lo in range(0, len(crops), batch):
        g1, seconds, decoded = s31(editor, crops[lo:lo + batch], valid[lo:lo + batch], grey[lo:lo + batch], edits)
        out.append(g1)
        if lo + batch <= len(crops):
            per_batch.append((seconds, decoded))
    g1 = np.concatenate(out)
    g1 = np.stack([grey_of(g) if gr else g for g, gr in zip(g1, grey)])
    small_w = [cv2.resize(v.astype(np.float32), (COMPARE, COMPARE), interpolation=cv2.INTER_AREA) for v in valid]
    p = [psnr(a, b, w + 1e-6) for a, b, w in zip(resize(g1, COMPARE), resize(crops, COMPARE), small_w)]
    s = [identity.cosine(a, b) for a, b in zip(g1, crops)]
    row = {"faces": len(crops), "psnr64_db_median": round(float(np.median(p)), 2),
           "psnr64_db_mean": round(float(np.mean(p)), 2), "sface_median": round(float(np.median(s)), 3),
           "sface_same_person": round(float(np.mean(np.array(s) >= SFACE_SAME_PERSON)), 3),
           "seconds_one_photo": round(one, 2), "seconds_one_photo_with_decode": round(one_decoded, 2),
           "seconds_batch8": round(float(np.median([s for s, _ in per_batch])), 2) if per_batch else None,
           "seconds_batch8_with_decode": round(float(np.median([d for _, d in per_batch])), 2) if per_batch else None,
           "psnr64_db": [round(v, 2) for v in p], "sface": [round(v, 3) for v in s]}
    return row, g1


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tune-steps", default="0,10,20,40", help="MobileStyleGAN rows, comma-separated (the sheet: the last)")
    p.add_argument("--attr", default="Male=1", help="the edit S31 runs for (NAME=0|1)")
    p.add_argument("--out", default="bench_inversion.json")
    p.add_argument("--sheet", help="contact sheet PNG: photo | patent G(z1) | MobileStyleGAN G(w1)")
    p.add_argument("--limit", type=int, help="only the first N photos")
    a = p.parse_args()
    photos = [load_photo(path) for path in real_photos()[:a.limit]]
    found = [(photo, faces[0]) for photo in photos if (faces := align.detect_faces(photo))]
    identity, rows, sheet = Identity(), {}, {}
    shown = int(a.tune_steps.split(",")[-1])  # the sheet shows the last row's inversions
    editors = [("patent", dict(gnet="patent"))]
    editors += [(f"mobilestylegan tune_steps={n}", dict(tune_steps=int(n))) for n in a.tune_steps.split(",")]
    for name, kw in editors:
        editor = Editor(**kw)
        rows[name], g1 = measure(editor, found, identity, parse_edits([a.attr]))
        print(name, json.dumps({k: v for k, v in rows[name].items() if not isinstance(v, list)}), flush=True)
        if name == "patent" or kw.get("tune_steps") == shown:
            sheet[name] = resize(g1, 128)
    with open(a.out, "w") as f:
        json.dump(rows, f, indent=1)
    if a.sheet and len(sheet) == 2:
        crops = [align.align(photo, face, 128).crop for photo, face in found]
        tiles = [t for trio in zip(crops, *sheet.values()) for t in trio]
        sheet_image = grid(np.stack(tiles), ncol=12)  # 256 colours: half the bytes, no visible loss at this size
        sheet_image.quantize(256, dither=Image.Dither.NONE).save(a.sheet, optimize=True)
        print("sheet:", a.sheet)


if __name__ == "__main__":
    main()
