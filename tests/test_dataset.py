import pickle
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from faceattr.data import images as images_mod
from faceattr.data.celeba import default_split
from faceattr.data.dataset import FaceDataset, to_float
from faceattr.data.images import load_rgb
from faceattr.errors import FaceattrError

ATTRS = ["Male", "Smiling", "Young"]


def banded(w=178, h=218):
    """Red top 20 rows, blue bottom 20 rows, a grey gradient between: the CelebA box keeps only the middle."""
    a = np.zeros((h, w, 3), np.uint8)
    a[:20] = (255, 0, 0)
    a[h - 20:] = (0, 0, 255)
    a[20:h - 20] = np.linspace(40, 200, w, dtype=np.uint8)[None, :, None]
    return a


def make_celeba(root, n=6, attrs=True, partition=True, ext="png"):
    img_dir = root / "img_align_celeba"
    img_dir.mkdir(parents=True)
    names = [f"{i:06d}.{ext}" for i in range(1, n + 1)]
    for name in names:
        Image.fromarray(banded()).save(img_dir / name)
    values = np.where(np.arange(n * len(ATTRS)).reshape(n, -1) % 2 == 0, 1, -1)
    if attrs:
        rows = [f"{nm} " + " ".join(f"{v:2d}" for v in row) for nm, row in zip(names, values)]
        lines = [str(n), " ".join(ATTRS), *rows]
        (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    if partition:
        (root / "list_eval_partition.txt").write_text("".join(f"{nm} {i % 3}\n" for i, nm in enumerate(names)))
    return names, values


def test_celeba_crop_box_labels_and_partition(tmp_path):
    names, values = make_celeba(tmp_path)
    d = FaceDataset(tmp_path, resolution=178, split="all", cache_dir=tmp_path / "c")
    assert len(d) == 6 and d.skipped == 0 and d.attr_names == ATTRS
    assert d.images.shape == (6, 178, 178, 3) and d.images.dtype == np.uint8
    assert isinstance(d.images, np.memmap)
    np.testing.assert_array_equal(d.images[0], banded()[20:198])  # box (0, 20, 178, 198), no red/blue band
    lab = dict(zip(d.filenames, d.labels))
    for nm, row in zip(names, values):
        np.testing.assert_array_equal(lab[nm], (row > 0).astype(np.float32))
    assert d.labels.dtype == np.float32
    train = FaceDataset(tmp_path, resolution=178, split="train", attrs=["Smiling"], cache_dir=tmp_path / "c")
    assert train.filenames == [names[0], names[3]] and train.attr_names == ["Smiling"]
    np.testing.assert_array_equal(train.labels[:, 0], (values[[0, 3], 1] > 0).astype(np.float32))
    assert isinstance(train.images, np.memmap)  # a split is a slice of the cache, not a copy
    assert sum(len(FaceDataset(tmp_path, 178, s, cache_dir=tmp_path / "c")) for s in ("train", "val", "test")) == 6


def test_celeba_unlabelled_without_partition_uses_default_split(tmp_path):
    names, _ = make_celeba(tmp_path, n=12, attrs=False, partition=False, ext="jpg")
    for split, code in [("train", 0), ("val", 1), ("test", 2)]:
        assert FaceDataset(tmp_path, 32, split).filenames == [n for n in names if default_split(n) == code]
    d = FaceDataset(tmp_path, resolution=32, split="all")
    assert d.labels is None and d.attr_names == [] and len(d) == 12
    assert (tmp_path / ".faceattr-cache").is_dir()
    img, lab = d[0]
    assert img.shape == (3, 32, 32) and img.dtype == torch.uint8 and lab.numel() == 0
    assert img[0].float().mean() < 200 and img[2].float().mean() < 200  # no red or blue band
    with pytest.raises(FaceattrError, match="no attribute file"):
        FaceDataset(tmp_path, resolution=32, attrs=["Male"])


def test_square_images_only_resized_and_batch(tmp_path):
    for i in range(5):
        a = np.zeros((128, 128, 3), np.uint8)
        a[:, :64] = (10 * i, 200, 30)
        a[:, 64:] = (250, 250, 250)
        Image.fromarray(a).save(tmp_path / f"f{i}.png")
    d = FaceDataset(tmp_path, resolution=64, split="all")
    assert d.images.shape == (5, 64, 64, 3) and d.labels is None
    green = np.broadcast_to(np.array([20, 200, 30], np.uint8), (64, 28, 3))
    np.testing.assert_array_equal(d.images[d.filenames.index("f2.png"), :, :28], green)
    b = d.batch(np.array([3, 1, 3]))
    assert b.shape == (3, 3, 64, 64) and b.dtype == torch.uint8
    assert torch.equal(b[1], d[1][0]) and torch.equal(b[0], b[2])
    x = to_float(b)
    assert x.dtype == torch.float32 and x.min() >= -1 and x.max() <= 1
    assert x[0, 1, 0, 0].item() == pytest.approx(200 / 127.5 - 1)


def test_plain_folder_csv_zero_one_and_split_column(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ["a.jpg", "b.png", "sub/c.webp", "d.bmp"]:
        Image.new("RGB", (40, 60), (120, 80, 40)).save(tmp_path / name)
    (tmp_path / "attributes.csv").write_text(
        "filename,Male,Smiling,split\na.jpg,1,0,train\nb.png,0,1,val\nsub/c.webp,1,1,0\nd.bmp,0,0,2\n")
    d = FaceDataset(tmp_path, resolution=16, split="train")
    assert d.filenames == ["a.jpg", "sub/c.webp"] and d.attr_names == ["Male", "Smiling"]
    np.testing.assert_array_equal(d.labels, [[1, 0], [1, 1]])
    assert FaceDataset(tmp_path, resolution=16, split="val").filenames == ["b.png"]
    t = FaceDataset(tmp_path, resolution=16, split="test", attrs=["Smiling"])
    assert t.filenames == ["d.bmp"] and t.labels.tolist() == [[0.0]]
    other = tmp_path / "labels.csv"
    other.write_text("filename,Old\na.jpg,-1\nb.png,1\nsub/c.webp,1\nd.bmp,-1\n")
    d = FaceDataset(tmp_path, resolution=16, split="all", csv=other)
    assert dict(zip(d.filenames, d.labels[:, 0])) == {"a.jpg": 0, "b.png": 1, "sub/c.webp": 1, "d.bmp": 0}
    other.write_text("filename,Old\na.jpg,2\n")
    with pytest.raises(FaceattrError, match="row 2.*1/-1 or 1/0"):
        FaceDataset(tmp_path, resolution=16, csv=other)
    with pytest.raises(FaceattrError, match="does not exist"):
        FaceDataset(tmp_path, resolution=16, csv=tmp_path / "nope.csv")


def test_missing_attribute_error_lists_available(tmp_path):
    make_celeba(tmp_path, n=3)
    with pytest.raises(FaceattrError, match=r"'Bald'.*available: Male, Smiling, Young"):
        FaceDataset(tmp_path, resolution=8, attrs=["Male", "Bald"])


def test_corrupt_and_missing_files_are_skipped_and_named(tmp_path):
    names, _ = make_celeba(tmp_path, n=6, ext="jpg")
    img_dir = tmp_path / "img_align_celeba"
    (img_dir / names[1]).write_bytes(b"not a jpeg at all")
    (img_dir / names[2]).write_bytes((img_dir / names[2]).read_bytes()[:300])  # truncated
    (img_dir / names[4]).unlink()
    with pytest.warns(UserWarning) as rec:
        d = FaceDataset(tmp_path, resolution=8, split="all", cache_dir=tmp_path / "c")
    text = "\n".join(str(w.message) for w in rec)
    assert names[1] in text and names[2] in text and names[4] in text and "skipped 2 unreadable" in text
    assert d.skipped == 2 and sorted(d.filenames) == [names[0], names[3], names[5]]
    assert d.images.shape[0] == 3 and len(d.labels) == 3
    with pytest.warns(UserWarning) as rec:  # the reused cache still reports it
        assert FaceDataset(tmp_path, resolution=8, split="all", cache_dir=tmp_path / "c").skipped == 2
    assert any(names[1] in str(w.message) and "unreadable" in str(w.message) for w in rec)
    for name in names[:4] + names[5:]:
        (img_dir / name).write_bytes(b"junk")
    with pytest.raises(FaceattrError, match="could be read"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        FaceDataset(tmp_path, resolution=8, split="all", cache_dir=tmp_path / "c")


def test_image_modes_and_exif(tmp_path):
    grey16 = Image.fromarray(np.full((10, 10), 32896, np.uint16))  # 32896 / 257 = 128
    assert grey16.mode.startswith("I")
    grey16.save(tmp_path / "g16.png")
    Image.new("L", (10, 10), 77).save(tmp_path / "grey.png")
    Image.new("RGBA", (10, 10), (255, 0, 0, 0)).save(tmp_path / "clear.png")  # fully transparent -> white
    pal = Image.new("RGB", (10, 10), (0, 128, 255)).convert("P", palette=Image.Palette.ADAPTIVE)
    pal.save(tmp_path / "pal.png")
    Image.new("CMYK", (10, 10), (0, 0, 0, 0)).save(tmp_path / "cmyk.jpg")
    assert np.abs(load_rgb(tmp_path / "g16.png", 10).astype(int) - 128).max() <= 1
    assert (load_rgb(tmp_path / "grey.png", 10) == 77).all()
    assert (load_rgb(tmp_path / "clear.png", 10) == 255).all()
    assert (load_rgb(tmp_path / "pal.png", 10) == (0, 128, 255)).all()
    assert load_rgb(tmp_path / "cmyk.jpg", 10).min() > 240

    a = np.zeros((32, 32, 3), np.uint8)
    a[:16] = (255, 0, 0)  # stored: red on top, blue below; orientation 6 = display rotated 90 deg clockwise
    a[16:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(a).save(tmp_path / "rot.jpg", exif=exif, quality=95)
    out = load_rgb(tmp_path / "rot.jpg", 32).astype(int)
    assert out[:, 24:, 0].mean() > 200 and out[:, :8, 2].mean() > 200  # red now on the right

    d = FaceDataset(tmp_path, resolution=10, split="all")
    assert len(d) == 6 and d.skipped == 0


def test_cache_reused_without_decoding_then_invalidated(tmp_path, monkeypatch):
    for i in range(4):
        Image.new("RGB", (24, 24), (i * 50, 0, 0)).save(tmp_path / f"{i}.png")
    first = FaceDataset(tmp_path, resolution=12, split="all")
    files = sorted((tmp_path / ".faceattr-cache").iterdir())
    assert [f.suffix for f in files] == [".json", ".npy"]

    def no_decode(*a, **k):
        raise AssertionError("decoded an image although the cache is valid")

    with monkeypatch.context() as m:
        m.setattr(images_mod.Image, "open", no_decode)
        again = FaceDataset(tmp_path, resolution=12, split="all")
        np.testing.assert_array_equal(again.images, first.images)
    assert sorted((tmp_path / ".faceattr-cache").iterdir()) == files

    Image.new("RGB", (24, 24), (0, 255, 0)).save(tmp_path / "2.png")
    changed = FaceDataset(tmp_path, resolution=12, split="all")
    assert changed.images[changed.filenames.index("2.png"), 0, 0].tolist() == [0, 255, 0]
    npys = sorted((tmp_path / ".faceattr-cache").glob("*.npy"))
    assert len(npys) == 2

    expected = np.array(changed.images)
    del changed
    for f in npys:  # a damaged cache file is rebuilt, not trusted
        f.unlink()
        f.write_bytes(b"garbage")
    np.testing.assert_array_equal(FaceDataset(tmp_path, resolution=12, split="all").images, expected)


def test_kaggle_nested_celeba_matches_by_basename(tmp_path):
    names, values = make_celeba(tmp_path / "x", n=3)
    (tmp_path / "img_align_celeba").mkdir()
    (tmp_path / "x" / "img_align_celeba").rename(tmp_path / "img_align_celeba" / "img_align_celeba")
    for f in ("list_attr_celeba.txt", "list_eval_partition.txt"):
        (tmp_path / "x" / f).rename(tmp_path / f)
    d = FaceDataset(tmp_path, resolution=8, split="all", attrs=["Young"])
    assert sorted(d.filenames) == [f"img_align_celeba/{n}" for n in names]
    assert FaceDataset(tmp_path, resolution=8, split="val").filenames == [f"img_align_celeba/{names[1]}"]


def test_pickle_for_dataloader_workers(tmp_path):
    for i in range(3):
        Image.new("RGB", (8, 8), (i, i, i)).save(tmp_path / f"{i}.png")
    d = FaceDataset(tmp_path, resolution=8, split="all")
    d.images  # open the memmap, then make sure it is not what gets pickled
    blob = pickle.dumps(d)
    assert len(blob) < 8 * 8 * 3 * 3
    e = pickle.loads(blob)
    assert len(e) == 3  # the memmap reopens from its path, as in a DataLoader worker
    np.testing.assert_array_equal(e.images, d.images)
    loader = torch.utils.data.DataLoader(d, batch_size=2)
    imgs, labs = next(iter(loader))
    assert imgs.shape == (2, 3, 8, 8) and labs.shape == (2, 0)


def test_missing_root_empty_folder_bad_split(tmp_path):
    with pytest.raises(FaceattrError, match="does not exist"):
        FaceDataset(tmp_path / "nope")
    (tmp_path / "notes.txt").write_text("no faces here")
    with pytest.raises(FaceattrError, match="no images"):
        FaceDataset(tmp_path)
    (tmp_path / "img_align_celeba").mkdir()
    with pytest.raises(FaceattrError, match="no images"):
        FaceDataset(tmp_path)
    with pytest.raises(FaceattrError, match="split"):
        FaceDataset(tmp_path, split="training")
