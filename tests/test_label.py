import csv

import numpy as np
import pytest
from PIL import Image

from faceattr.data import label
from faceattr.data.celeba import default_split, read_attrs, read_partition
from faceattr.errors import FaceattrError
from faceattr.judges import detector, labeller


class FakeJudges:
    """Reads the 'judgement' from the colour: red -> P(male), green -> age/2, blue -> P(smile)."""

    def __init__(self, monkeypatch, fail_after=None):
        self.seen, self.fail_after = [], fail_after
        fake = self

        def face_boxes(images):
            fake.seen += [int(im[0, 0, 0]) for im in images]
            if fail_after is not None and len(fake.seen) > fail_after:
                raise KeyboardInterrupt
            n = len(images)
            return np.tile([[10, 10, 50, 50]], (n, 1)), np.ones(n, bool)

        class AgeGender:
            def judge(self, images, boxes):
                return (np.array([im[0, 0, 0] / 255 for im in images], np.float32),
                        np.array([im[0, 0, 1] / 2 for im in images], np.float32))

        class Smile:
            def judge(self, images, boxes):
                return np.array([im[0, 0, 2] / 255 for im in images], np.float32)

        monkeypatch.setattr(labeller, "face_boxes", face_boxes)
        monkeypatch.setattr(labeller, "AgeGenderJudge", AgeGender)
        monkeypatch.setattr(labeller, "SmileJudge", Smile)


def make_corpus(root, colors):
    folder = root / "img_align_celeba"
    folder.mkdir(parents=True, exist_ok=True)
    for name, rgb in colors.items():
        Image.new("RGB", (64, 64), rgb).save(folder / name, quality=100)
    return folder


COLORS = {  # red (P male), green (2 x age), blue (P smile)
    "000000.jpg": (250, 40, 250),  # male, 20, smiling
    "000001.jpg": (10, 160, 10),  # female, 80, not smiling
    "000002.jpg": (200, 100, 20),  # male, 50, not smiling
}


def test_labels_from_raw_thresholds():
    got = label.labels_from_raw([0.5, 0.49], [label.YOUNG_BELOW - 0.1, label.YOUNG_BELOW], [0.5, 0.2])
    assert got.tolist() == [[1, 1, 1], [-1, -1, -1]]
    assert got.dtype == np.int8


def test_writes_celeba_files_and_sheets(tmp_path, monkeypatch):
    make_corpus(tmp_path, COLORS)
    (tmp_path / "img_align_celeba" / "000003.jpg").write_bytes(b"not a jpeg")
    FakeJudges(monkeypatch)
    with pytest.warns(UserWarning, match="unreadable"):
        summary = label.label_corpus(tmp_path, sheets_dir=tmp_path / "sheets")
    names, files, values = read_attrs(tmp_path / "list_attr_celeba.txt")
    assert names == ["Male", "Young", "Smiling"]
    assert files == ["000000.jpg", "000001.jpg", "000002.jpg"]
    assert values.tolist() == [[1, 1, 1], [-1, -1, -1], [1, -1, -1]]
    assert read_partition(tmp_path / "list_eval_partition.txt") == {f: default_split(f) for f in files}
    assert summary["n"] == 3 and summary["Male"] == pytest.approx(2 / 3)
    sheets = sorted(p.name for p in (tmp_path / "sheets").iterdir())
    assert sheets == sorted(f"{a}_{v}.png" for a in ("Male", "Young", "Smiling") for v in ("yes", "no"))
    assert Image.open(tmp_path / "sheets" / "Male_yes.png").size[0] > 12 * 100


def test_resumes_from_the_raw_csv(tmp_path, monkeypatch):
    make_corpus(tmp_path, COLORS)
    monkeypatch.setattr(label, "BATCH", 1)
    monkeypatch.setattr(label, "SAVE_EVERY", 1)
    FakeJudges(monkeypatch, fail_after=2)
    with pytest.raises(KeyboardInterrupt):  # dies while judging the third image
        label.label_corpus(tmp_path)
    with open(tmp_path / "labels_raw.csv") as f:
        assert [r["filename"] for r in csv.DictReader(f)] == ["000000.jpg", "000001.jpg"]
    fake = FakeJudges(monkeypatch)
    make_corpus(tmp_path, {"000009.jpg": (0, 0, 0)})
    label.label_corpus(tmp_path)
    assert np.allclose(fake.seen, [200, 0], atol=4)  # only the two images not yet judged
    assert read_attrs(tmp_path / "list_attr_celeba.txt")[1] == ["000000.jpg", "000001.jpg", "000002.jpg", "000009.jpg"]


def test_stale_raw_csv_is_relabelled(tmp_path, monkeypatch):
    make_corpus(tmp_path, COLORS)
    (tmp_path / "labels_raw.csv").write_text("filename,p_male\n000000.jpg,0.9\n")
    fake = FakeJudges(monkeypatch)
    with pytest.warns(UserWarning, match="labelling anew"):
        label.label_corpus(tmp_path)
    assert len(fake.seen) == 3


def test_missing_corpus_is_a_user_error(tmp_path):
    with pytest.raises(FaceattrError, match="img_align_celeba does not exist"):
        label.label_corpus(tmp_path)
    (tmp_path / "img_align_celeba").mkdir()
    with pytest.raises(FaceattrError, match="no images"):
        label.label_corpus(tmp_path)


def test_real_judges_label_two_faces(tmp_path):
    """End to end with the shipped models on two aligned crops made from scikit-image pictures."""
    skdata = pytest.importorskip("skimage.data")
    det = detector.FaceDetector()
    folder = tmp_path / "img_align_celeba"
    folder.mkdir()
    for name, img in (("her.png", skdata.astronaut()), ("him.png", np.repeat(skdata.camera()[..., None], 3, 2))):
        x, y, w, h = det.detect(img)[0].box
        s = int(w * 1.8)
        top, left = max(0, int(y + h * 0.55 - s / 2)), max(0, int(x + w / 2 - s / 2))
        Image.fromarray(np.ascontiguousarray(img[top:top + s, left:left + s])).save(folder / name)
    label.label_corpus(tmp_path)
    names, files, values = read_attrs(tmp_path / "list_attr_celeba.txt")
    got = {f: dict(zip(names, v.tolist())) for f, v in zip(files, values)}
    assert got["her.png"]["Male"] == -1 and got["her.png"]["Smiling"] == 1
    assert got["him.png"]["Male"] == 1 and got["him.png"]["Smiling"] == -1
