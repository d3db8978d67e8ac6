"""Colour shift of an edit: how much the face's colour (not its lightness) changed between input and
output, in CIE Lab units, so an edit that tints the skin shows up even where the gender and age
judges are content.

`chroma_shift` is the 90th percentile, over the face region, of the per-pixel chroma change
sqrt(da*^2 + db*^2). A JPEG re-save at quality 85 (4:2:0) of skimage's astronaut gives 4.5 on her
face (tests/test_colour.py); a tint a viewer notices is well above 10.
"""

import numpy as np

from faceattr.errors import FaceattrError

# Largest |R-G| or |G-B| (0-255 levels) of a photo still taken as grey: a grey photo saved as RGB
# JPEG keeps its channels within a level or two of each other.
GREY_TOLERANCE = 2
PERCENTILE = 90


def _rgb(image, name: str) -> np.ndarray:
    a = np.asarray(image)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3 or min(a.shape[:2]) < 1:
        raise FaceattrError(f"{name}: expected an RGB uint8 (H, W, 3) image, got {a.dtype} {a.shape}")
    return a


def is_grey(image, tolerance: int = GREY_TOLERANCE) -> bool:
    """True when every pixel's three channels are equal within `tolerance` levels."""
    a = _rgb(image, "image").astype(np.int16)
    return int(max(np.abs(a[..., 0] - a[..., 1]).max(), np.abs(a[..., 1] - a[..., 2]).max())) <= tolerance


def chroma_shift(before, after, mask=None) -> float | None:
    """90th percentile of the chroma change sqrt(da*^2 + db*^2) (CIE Lab, D65) from `before` to
    `after`, two aligned RGB uint8 crops of one shape, over `mask` (bool or 0/1 (H, W); None: every
    pixel). None when `before` is a grey photo: it has no colour to keep."""
    import cv2

    before, after = _rgb(before, "before"), _rgb(after, "after")
    if before.shape != after.shape:
        raise FaceattrError(f"before and after differ in shape: {before.shape} vs {after.shape}")
    if mask is None:
        region = np.ones(before.shape[:2], bool)
    else:
        region = np.asarray(mask)
        if region.shape != before.shape[:2]:
            raise FaceattrError(f"mask is {region.shape}, the images {before.shape[:2]}")
        region = region.astype(bool)
        if not region.any():
            raise FaceattrError("mask selects no pixel")
    if is_grey(before):
        return None
    # float32 in [0, 1]: cv2 then gives L in 0-100 and a*, b* in real Lab units (uint8 input would
    # give them offset and scaled to 0-255)
    lab_before = cv2.cvtColor(before.astype(np.float32) / 255, cv2.COLOR_RGB2Lab)
    lab_after = cv2.cvtColor(after.astype(np.float32) / 255, cv2.COLOR_RGB2Lab)
    d = lab_after[..., 1:] - lab_before[..., 1:]
    change = np.sqrt((d.astype(np.float64) ** 2).sum(-1))[region]
    return float(np.percentile(change, PERCENTILE))
