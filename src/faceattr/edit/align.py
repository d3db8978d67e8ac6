"""Real photos <-> the aligned face crops G-Net and E-Net work on (around patent S31 and S33).

The patent works on aligned faces only; a photo needs three more steps:
- `detect_faces`: YuNet boxes and 5 landmarks (judges.detector.FaceDetector), largest face first;
- `align`: the least-squares similarity transform (Umeyama) taking a face's 5 landmarks onto
  `TEMPLATE`, the landmark layout of our training corpus, and the crop it cuts out;
- `paste_back` (S33): the edited crop warped back at the photo's own resolution through the inverse
  transform, blended through a feathered ellipse and colour-matched so no seam shows.
"""

from dataclasses import dataclass

import cv2
import numpy as np

from faceattr.errors import FaceattrError
from faceattr.judges.detector import Face, FaceDetector

# Mean YuNet landmarks of the corpus (FFHQ-aligned 128 px faces), as fractions of the side with
# pixel centres at (i + 0.5) / 128: right eye, left eye, nose tip, right and left mouth corner.
# Computed once with judges.detector.FaceDetector over the first 500 files of
# /work/data/faces128/img_align_celeba (YuNet found a face in all 500; spread across faces is
# 0.010-0.018 of the side, 0.037 for the nose x, which follows head yaw).
TEMPLATE = np.array([[0.3648, 0.4698],
                     [0.6288, 0.4687],
                     [0.4906, 0.6171],
                     [0.3892, 0.7344],
                     [0.6183, 0.7278]])

# Blend regions inside the crop, as (centre, semi-axes) fractions of its side. "face": an ellipse over
# brows, cheeks, jaw and chin, centred a little below the eye-mouth midpoint (hair and background
# stay the photo's); "head": also the hair around it and the neck, where attributes such as gender
# show too.
MASK_REGIONS = {"face": ((0.495, 0.60), (0.30, 0.36)), "head": ((0.5, 0.52), (0.44, 0.50))}

_detector = None


@dataclass
class AlignedFace:
    """An aligned crop (uint8 (size, size, 3)), the 2x3 matrix mapping photo pixels into it, and
    `valid` (float32 (size, size) in [0, 1]): the share of each crop pixel that lies inside the photo."""

    crop: np.ndarray
    matrix: np.ndarray
    face: Face
    valid: np.ndarray


def detect_faces(rgb: np.ndarray) -> list[Face]:
    """All faces YuNet finds in an RGB uint8 photo, largest box first."""
    global _detector
    if _detector is None:
        _detector = FaceDetector()
    return sorted(_detector.detect(rgb), key=lambda f: -float(f.box[2] * f.box[3]))


def template_points(size: int) -> np.ndarray:
    """`TEMPLATE` in pixel coordinates of a size x size crop (pixel centres on integers, as cv2)."""
    return TEMPLATE * size - 0.5


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares rotation + uniform scale + translation taking points src (N, 2) onto dst (N, 2)
    (Umeyama 1991, no reflection) -> 2x3 matrix."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    u, sig, vt = np.linalg.svd(d.T @ s / len(src))
    flip = np.diag([1.0, np.sign(np.linalg.det(u @ vt))])
    rot = u @ flip @ vt
    scale = np.trace(np.diag(sig) @ flip) / (s ** 2).sum(1).mean()
    return np.hstack([scale * rot, (mu_d - scale * rot @ mu_s)[:, None]])


def face_scale(matrix: np.ndarray) -> float:
    """Crop pixels per photo pixel of a similarity matrix."""
    return float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))


def native_size(face: Face, limit: tuple[int, int] = (64, 1024)) -> int:
    """The crop side at which an aligned crop keeps the photo's own pixel density (clamped to `limit`)."""
    m = similarity(face.landmarks, template_points(1))
    return int(np.clip(round(1 / face_scale(m)), *limit))


def align(rgb: np.ndarray, face: Face, size: int) -> AlignedFace:
    """Cut `face` out of `rgb` as a size x size crop aligned like the corpus. Downscaling is
    antialiased (warped at a whole multiple of `size`, then area-averaged); parts of the crop outside
    the photo are mirrored in from its border."""
    matrix = similarity(face.landmarks, template_points(size))
    k = max(1, int(np.ceil(1 / face_scale(matrix))))  # supersampling factor: crop px per photo px >= 1
    big = matrix * k
    big[:, 2] += (k - 1) / 2  # pixel centres: x_big = k * (x + 0.5) - 0.5
    crop = cv2.warpAffine(rgb, big, (size * k, size * k), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    valid = cv2.warpAffine(np.ones(rgb.shape[:2], np.float32), big, (size * k, size * k), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if k > 1:
        crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
        valid = cv2.resize(valid, (size, size), interpolation=cv2.INTER_AREA)
    return AlignedFace(crop=crop, matrix=matrix, face=face, valid=valid)


def is_grey(rgb: np.ndarray, tolerance: int = 2) -> bool:
    """Whether a uint8 RGB picture is grey (every pixel's channels within `tolerance` levels)."""
    a = rgb.astype(np.int16)
    return int(np.abs(a - a[..., :1]).max()) <= tolerance


def face_mask(size: int, feather: float = 0.12, region: str = "face") -> np.ndarray:
    """Soft blend mask float32 (size, size) in [0, 1]: 1 inside the `region` ellipse (MASK_REGIONS),
    falling to 0 over a band `feather` x the crop side wide at its edge."""
    if region not in MASK_REGIONS:
        raise FaceattrError(f"unknown mask region {region!r}; choose from {', '.join(MASK_REGIONS)}")
    centre, axes = MASK_REGIONS[region]
    cx, cy = (np.array(centre) * size - 0.5)
    ax, ay = np.array(axes) * size
    yy, xx = np.mgrid[0:size, 0:size]
    r = np.sqrt(((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2)  # 1 on the ellipse
    band = feather * size / min(ax, ay)  # feather width in units of r
    t = np.clip((1 - r) / band, 0, 1)  # 0 at the ellipse, 1 one band inside it
    return (t * t * (3 - 2 * t)).astype(np.float32)  # smoothstep: no visible edge where the ramp ends


def match_colour(image: np.ndarray, target: np.ndarray, mask: np.ndarray,
                 reference: np.ndarray | None = None) -> np.ndarray:
    """Reinhard colour transfer in Lab, weighted by `mask`: shift and scale each channel of `image` so
    that `reference` (default `image` itself) gets `target`'s mean and std inside the mask.

    With reference = G(z1) (the reconstruction) and image = G(z2), this removes G-Net's colour error
    on this face while keeping any colour change the edit made. All images uint8 RGB of one size.
    """
    reference = image if reference is None else reference
    lab = [cv2.cvtColor(a, cv2.COLOR_RGB2LAB).astype(np.float64) for a in (image, target, reference)]
    w = mask.astype(np.float64)[..., None] / max(float(mask.sum()), 1e-6)

    def stats(a):
        mu = (a * w).sum((0, 1))
        return mu, np.sqrt(((a - mu) ** 2 * w).sum((0, 1))) + 1e-3

    (mu_t, sd_t), (mu_r, sd_r) = stats(lab[1]), stats(lab[2])
    out = (lab[0] - mu_r) * np.clip(sd_t / sd_r, 0.5, 2.0) + mu_t  # clip: a flat region must not explode
    return cv2.cvtColor(np.clip(out + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)


def paste_back(photo: np.ndarray, edited_crop: np.ndarray, matrix: np.ndarray, mask: np.ndarray | None = None,
               feather: float = 0.12, reference_crop: np.ndarray | None = None) -> np.ndarray:
    """S33 for a photo: a new photo (same size and dtype) with `edited_crop` warped back through the
    inverse of `matrix` (photo -> crop) and blended through `mask` (crop-sized, default `face_mask`).

    With `reference_crop` (the aligned crop the edit started from) only the change
    edited_crop - reference_crop is warped back and added: the photo keeps its own pixels, unblurred
    by resampling, wherever the edit changed nothing. Only the face's bounding box is touched;
    every pixel outside the mask's footprint is unchanged. Colour matching, where wanted, is the
    caller's step (`match_colour`), done in crop space before pasting.
    """
    size = edited_crop.shape[0]
    mask = face_mask(size, feather) if mask is None else mask
    inv = cv2.invertAffineTransform(matrix)
    h, w = photo.shape[:2]
    corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], np.float64) - [0.5, 0.5, 0]
    pts = corners @ inv.T
    x0, y0 = np.clip(np.floor(pts.min(0)).astype(int) - 1, 0, [w, h])
    x1, y1 = np.clip(np.ceil(pts.max(0)).astype(int) + 2, 0, [w, h])
    out = photo.copy()
    if x1 <= x0 or y1 <= y0:
        return out
    roi = inv.copy()
    roi[:, 2] -= [x0, y0]  # warp straight into the box around the face
    box = (x1 - x0, y1 - y0)
    region = out[y0:y1, x0:x1].astype(np.float32)
    alpha = cv2.warpAffine(mask.astype(np.float32), roi, box, flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)[..., None]
    if reference_crop is None:
        face = cv2.warpAffine(edited_crop, roi, box, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
        change = face.astype(np.float32) - region
    else:
        delta = edited_crop.astype(np.float32) - reference_crop.astype(np.float32)
        change = cv2.warpAffine(delta, roi, box, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    out[y0:y1, x0:x1] = np.clip(region + alpha * change + 0.5, 0, 255).astype(photo.dtype)  # alpha 0: the same pixel
    return out
