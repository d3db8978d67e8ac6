"""Colour shift of an edit (faceattr.judges.colour.chroma_shift)."""

import io

import numpy as np
import pytest
import skimage.data
from PIL import Image

from faceattr.errors import FaceattrError
from faceattr.judges.colour import chroma_shift, is_grey

# Eileen Collins' face in skimage's astronaut (human's BlazeFace box, x 155-297, y 57-199)
FACE = (slice(57, 199), slice(155, 297))


@pytest.fixture(scope="module")
def astronaut():
    return skimage.data.astronaut()


def _face_mask(shape):
    mask = np.zeros(shape[:2], bool)
    mask[FACE] = True
    return mask


def test_identical_images_shift_nothing(astronaut):
    assert chroma_shift(astronaut, astronaut.copy()) == 0.0


def test_a_jpeg_re_save_shifts_a_little(astronaut):
    buf = io.BytesIO()
    Image.fromarray(astronaut).save(buf, "JPEG", quality=85)
    saved = np.asarray(Image.open(buf).convert("RGB"))
    shift = chroma_shift(astronaut, saved, _face_mask(astronaut.shape))
    assert 2.5 < shift < 6  # 4.5 (4:2:0 chroma subsampling is most of it)


def test_a_tint_shifts_a_lot(astronaut):
    tinted = np.clip(astronaut * np.array([1.15, 1.0, 0.8]), 0, 255).astype(np.uint8)
    assert chroma_shift(astronaut, tinted, _face_mask(astronaut.shape)) > 10


def test_a_grey_photo_has_no_colour_to_keep(astronaut):
    grey = np.repeat(astronaut.mean(2, keepdims=True).astype(np.uint8), 3, 2)
    noisy = np.clip(grey.astype(int) + np.random.default_rng(0).integers(-1, 2, grey.shape), 0, 255).astype(np.uint8)
    assert is_grey(grey) and is_grey(noisy) and not is_grey(astronaut)
    assert chroma_shift(grey, astronaut) is None and chroma_shift(noisy, astronaut) is None


def test_bad_input_is_a_one_line_error(astronaut):
    with pytest.raises(FaceattrError, match="differ in shape"):
        chroma_shift(astronaut, astronaut[:100])
    with pytest.raises(FaceattrError, match="mask is"):
        chroma_shift(astronaut, astronaut, np.ones((10, 10), bool))
    with pytest.raises(FaceattrError, match="no pixel"):
        chroma_shift(astronaut, astronaut, np.zeros(astronaut.shape[:2], bool))
    with pytest.raises(FaceattrError, match="RGB uint8"):
        chroma_shift(astronaut.astype(np.float32), astronaut)
