import argparse
import importlib.util
import io
import os
import tarfile

import numpy as np
import pytest
from PIL import Image

from faceattr import fileio
from faceattr.cli import parse_seeds
from faceattr.data import synth
from faceattr.errors import FaceattrError


def jpeg(color, size=32):
    buf = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buf, format="JPEG", quality=93)
    return buf.getvalue()


def make_cache(folder, members):
    """Tar shards like /work/shared/faces128: {shard name: {member name: bytes}}."""
    folder.mkdir()
    for shard, files in members.items():
        with tarfile.open(folder / shard, "w") as tf:
            for name, data in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return folder


def files_in(folder):
    return sorted(p.name for p in folder.iterdir())


def test_seed_parsing_on_the_command_line():
    assert parse_seeds("3-5,9") == [3, 4, 5, 9]
    assert parse_seeds("0-9999") == list(range(10000))
    with pytest.raises(argparse.ArgumentTypeError):
        parse_seeds("a-b")


def test_seed_filenames():
    assert synth.seed_filename(42) == "000042.jpg"
    assert synth.seed_filename(999999) == "999999.jpg"
    with pytest.raises(FaceattrError):
        synth.seed_filename(1_000_000)


def test_unpack_from_cache_writes_the_cached_bytes_and_resumes(tmp_path):
    data = {n: jpeg((n * 40, 0, 0)) for n in range(4)}
    cache = make_cache(tmp_path / "cache", {
        "faces-00.tar": {"000000.jpg": data[0], "000001.jpg": data[1]},
        "faces-01.tar": {"000002.jpg": data[2], "000003.jpg": data[3]},
    })
    out = tmp_path / "corpus"
    r = synth.synthesize(out, [0, 2, 3], size=32, from_cache=cache)
    images = out / "img_align_celeba"
    assert files_in(images) == ["000000.jpg", "000002.jpg", "000003.jpg"]
    assert (images / "000002.jpg").read_bytes() == data[2]
    assert (r["written"], r["skipped"]) == (3, 0)

    (images / "000000.jpg").write_bytes(b"kept")  # an existing file is never redone
    r = synth.synthesize(out, [0, 1, 2, 3], size=32, from_cache=cache)
    assert (r["written"], r["skipped"]) == (1, 3)
    assert (images / "000000.jpg").read_bytes() == b"kept"
    assert (images / "000001.jpg").read_bytes() == data[1]


def test_unpack_names_missing_seeds_and_writes_nothing(tmp_path):
    cache = make_cache(tmp_path / "cache", {"a.tar": {"000000.jpg": jpeg("red")}})
    with pytest.raises(FaceattrError, match=r"1 seed\(s\) not in cache.*\(7\)"):
        synth.synthesize(tmp_path / "out", [0, 7], size=32, from_cache=cache)
    assert files_in(tmp_path / "out" / "img_align_celeba") == []


def test_unpack_refuses_a_cache_of_another_size(tmp_path):
    cache = make_cache(tmp_path / "cache", {"a.tar": {"000000.jpg": jpeg("red", size=32)}})
    with pytest.raises(FaceattrError, match="32x32 images, not 64x64"):
        synth.synthesize(tmp_path / "out", [0], size=64, from_cache=cache)
    with pytest.raises(FaceattrError, match="no \\*.tar"):
        synth.synthesize(tmp_path / "out", [0], size=32, from_cache=tmp_path)


class FlakyGenerator:
    """Stands in for the GAN: fails on one seed, as a crash or Ctrl-C would."""

    mean_style = np.zeros((1, 512), np.float32)

    def __init__(self, fail_on=None):
        self.fail_on, self.calls = fail_on, []

    def jpeg(self, seed, size):
        self.calls.append(seed)
        if seed == self.fail_on:
            raise KeyboardInterrupt
        return jpeg((seed, seed, seed), size)


def test_generation_is_atomic_and_resumable(tmp_path, monkeypatch):
    out = tmp_path / "corpus"
    images = out / "img_align_celeba"
    monkeypatch.setattr(synth, "generator", lambda: FlakyGenerator(fail_on=3))
    real_replace, renames = os.replace, []

    def dying_replace(src, dst):  # the process dies after writing seed 2, before its rename
        renames.append(dst)
        if len(renames) == 3:
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(fileio.os, "replace", dying_replace)
    with pytest.raises(KeyboardInterrupt):
        synth.synthesize(out, range(5), size=16)
    monkeypatch.setattr(fileio.os, "replace", real_replace)
    assert files_in(images) == ["000000.jpg", "000001.jpg"]  # no half file, no temp file left
    gen = FlakyGenerator()
    monkeypatch.setattr(synth, "generator", lambda: gen)
    r = synth.synthesize(out, range(5), size=16)
    assert gen.calls == [2, 3, 4]
    assert r["written"] == 3 and r["images_per_s"] > 0
    assert Image.open(images / "000004.jpg").size == (16, 16)


def test_to_jpeg_maps_the_range_and_resizes():
    img = np.concatenate([np.full((1, 3, 64, 32), -1.0), np.full((1, 3, 64, 32), 1.0)], axis=3)
    pic = np.asarray(Image.open(io.BytesIO(synth.to_jpeg(img.astype(np.float32), 16))))
    assert pic.shape == (16, 16, 3)
    assert pic[:, :6].max() < 12 and pic[:, -6:].min() > 243


def test_missing_weights_tell_how_to_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FaceattrError, match="pip install --no-deps random-face==2021.7.21.1"):
        synth.weights_dir()


# Seed 0 of the prebuilt cache (/work/shared/faces128), mean RGB of each 32x32 block of the 128 px
# picture: the recipe must keep reproducing it.
SEED0_BLOCKS = [
    [[136, 131, 113], [154, 131, 119], [166, 144, 141], [131, 109, 97]],
    [[139, 129, 112], [184, 148, 143], [212, 176, 176], [120, 87, 73]],
    [[155, 142, 126], [190, 144, 142], [211, 160, 163], [132, 91, 78]],
    [[155, 125, 167], [122, 95, 112], [187, 140, 134], [118, 92, 91]],
]


@pytest.mark.skipif(importlib.util.find_spec("random_face") is None, reason="random-face weights not installed")
def test_real_generation_reproduces_the_cache_recipe(tmp_path):
    synth.synthesize(tmp_path, [0], size=128)
    pic = np.asarray(Image.open(tmp_path / "img_align_celeba" / "000000.jpg"), dtype=float)
    assert pic.shape == (128, 128, 3)
    blocks = pic.reshape(4, 32, 4, 32, 3).mean((1, 3))
    assert np.abs(blocks - np.array(SEED0_BLOCKS)).max() < 3
