import cv2
import numpy as np
import pytest

from faceattr.errors import FaceattrError


def test_detector_finds_the_astronaut(detector, astronaut):
    faces = detector.detect(astronaut)
    assert len(faces) == 1
    x, y, w, h = faces[0].box
    assert 150 < x + w / 2 < 250 and 80 < y + h / 2 < 150 and 60 < w < 130  # her face, not the flag
    lm = faces[0].landmarks
    assert lm.shape == (5, 2) and (lm[:, 0] > x).all() and (lm[:, 0] < x + w).all()
    assert lm[0, 0] < lm[1, 0] and lm[2, 1] < lm[3, 1]  # eyes left-to-right, nose above the mouth
    assert faces[0].score > 0.8


def test_detector_scales_back_from_large_images(detector, astronaut):
    small = detector.detect(astronaut)[0]
    big = detector.detect(cv2.resize(astronaut, (1400, 1400)))[0]  # detected at 640, scaled back
    assert np.abs(big.box * 512 / 1400 - small.box).max() < 6


def test_detector_finds_nothing_in_a_blank_image(detector):
    assert detector.detect(np.full((200, 300, 3), 128, np.uint8)) == []


def test_detector_rejects_bad_images(detector):
    with pytest.raises(FaceattrError, match="RGB uint8"):
        detector.detect(np.zeros((64, 64, 3), np.float32))
