"""Pictures that ship with scikit-image, for the judges: the astronaut (Eileen Collins, smiling) and the
cameraman (a man, not smiling), whole and as face crops."""

import numpy as np
import pytest

from faceattr.judges.detector import FaceDetector


def face_crop(image, face, margin=1.8):
    """Square crop around a detection, roughly as an aligner would make it."""
    x, y, w, h = face.box
    cx, cy, s = x + w / 2, y + h / 2 + 0.05 * h, int(w * margin)
    top, left = max(0, int(cy - s / 2)), max(0, int(cx - s / 2))
    return np.ascontiguousarray(image[top:top + s, left:left + s])


@pytest.fixture(scope="session")
def detector():
    return FaceDetector()


@pytest.fixture(scope="session")
def astronaut():
    return pytest.importorskip("skimage.data").astronaut()


@pytest.fixture(scope="session")
def cameraman():
    return np.repeat(pytest.importorskip("skimage.data").camera()[..., None], 3, axis=2)


@pytest.fixture(scope="session")
def her(detector, astronaut):
    return face_crop(astronaut, detector.detect(astronaut)[0])


@pytest.fixture(scope="session")
def him(detector, cameraman):
    return face_crop(cameraman, detector.detect(cameraman)[0])
