"""How often does the corpus labeller change its verdict when a face changes in ways nobody would see,
or under E-Net's training augmentations? E-Net is scored against these labels (issue #4), so this is
the scale of the label noise it has to live with.

    python benchmarks/labeller_stability.py --data data/faces128 [--split test] [-n 1000] [--attr Male]

For each view of the first N faces of the split, the labeller reads them again (`AttributeLabeller`,
soft) and the verdict is compared with the corpus's own (labels_raw.csv): the share of verdicts that
changed, among all faces and among those it is unsure of (P 0.2-0.8), and the mean change of P.
"""

import argparse
import io
import json

import cv2
import numpy as np
import torch
from PIL import Image

from faceattr.data.dataset import FaceDataset
from faceattr.data.label import AttributeLabeller
from faceattr.data.label import read_soft_labels
from faceattr.imaging import to_float, to_uint8
from faceattr.train.augment import brightness, contrast, saturation, translation


def jpeg(im, quality=90):
    buf = io.BytesIO()
    Image.fromarray(im).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"))


def shift(im, dx, dy):
    h, w = im.shape[:2]
    return cv2.warpAffine(im, np.float32([[1, 0, dx], [0, 1, dy]]), (w, h), borderMode=cv2.BORDER_REPLICATE)


def augmented(images, fn, seed=0):
    """uint8 faces through one of E-Net's training augmentations (random per face)."""
    torch.manual_seed(seed)
    return to_uint8(fn(to_float(images)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("-n", type=int, default=1000)
    ap.add_argument("--attr", default="Male")
    ap.add_argument("--out", help="also write the JSON here")
    args = ap.parse_args()

    ds = FaceDataset(args.data, 128, args.split, [args.attr])
    n = min(args.n, len(ds))
    faces = np.asarray(ds.images[:n])
    p0 = read_soft_labels(args.data, ds.filenames[:n], [args.attr])[:, 0]
    views = {
        "1 px right": [shift(im, 1, 0) for im in faces],
        "1 px down": [shift(im, 0, 1) for im in faces],
        "JPEG q90": [jpeg(im) for im in faces],
        "64 px (E-Net's view)": [cv2.resize(im, (64, 64), interpolation=cv2.INTER_AREA) for im in faces],
        "brightness": augmented(faces, brightness),
        "saturation": augmented(faces, saturation),
        "contrast": augmented(faces, contrast),
        "translation": augmented(faces, translation),
    }
    labeller, unsure = AttributeLabeller([args.attr], soft=True), (p0 > 0.2) & (p0 < 0.8)
    result = {"data": args.data, "split": args.split, "n": n, "attr": args.attr, "unsure": int(unsure.sum()),
              "views": {}}
    for name, images in views.items():
        p = labeller(list(images))[0][:, 0]
        changed = (p >= 0.5) != (p0 >= 0.5)
        result["views"][name] = r = {"changed": float(changed.mean()), "changed_unsure": float(changed[unsure].mean()),
                                     "mean_abs_dp": float(np.abs(p - p0).mean())}
        print(f"{name:22s} changed {r['changed']:.2%}   of the {unsure.sum()} unsure {r['changed_unsure']:.1%}   "
              f"mean |dP| {r['mean_abs_dp']:.4f}", flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
