"""Every weights and checkpoint reader: a crafted pickle is refused before it runs anything; a broken file
(empty, truncated, random bytes, a folder, missing keys, wrong shapes) is one FaceattrError line naming it."""

import os
import pickle

import pytest
import torch

from faceattr import weights
from faceattr.cli import main
from faceattr.errors import FaceattrError
from faceattr.nets.encoder import ENC_KEYS, Encoder
from faceattr.nets.enet import ENet
from faceattr.nets.gnet import GEN_KEYS, Generator
from faceattr.weights import load_checkpoint, load_classifier, load_encoder, load_generator


class RunsCode:
    """Unpickling this calls os.system: it creates `marker`."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def tiny_gnet():
    torch.manual_seed(0)
    return Generator(z_dim=8, resolution=16, width=256)


def gan_checkpoint(path, g=None, **config):
    g = g or tiny_gnet()
    weights.save_checkpoint(path, {"config": {**{k: getattr(g, k) for k in GEN_KEYS}, **config},
                                   "G_ema": g.state_dict()})
    return path


@pytest.fixture
def bad_files(tmp_path):
    """name -> (path, words the error must contain)."""
    good = gan_checkpoint(tmp_path / "good.pt").read_bytes()
    files = {
        "empty": (b"", "empty"),
        "truncated": (good[: len(good) // 2], "not a readable checkpoint"),
        "random bytes": (bytes(range(256)) * 8, "not a readable checkpoint"),
        "text": (b"hello, world\n", "not a readable checkpoint"),
        "crafted pickle (torch.save)": (None, "refused"),
        "crafted pickle (plain pickle)": (pickle.dumps({"G_ema": RunsCode(tmp_path / "marker")}), "not a readable"),
    }
    out = {}
    for i, (name, (data, words)) in enumerate(files.items()):
        path = tmp_path / f"bad{i}.pt"
        if data is None:
            torch.save({"config": {}, "G_ema": RunsCode(tmp_path / "marker")}, path)
        else:
            path.write_bytes(data)
        out[name] = (path, words)
    (tmp_path / "folder.pt").mkdir()
    out["folder"] = (tmp_path / "folder.pt", "a folder")
    out["missing file"] = (tmp_path / "none.pt", "no such")
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    out["not a dict"] = (tmp_path / "tensor.pt", "not a training checkpoint")
    return out


def one_line(e, path, words):
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg and words in msg, msg
    return msg


def test_the_crafted_pickle_would_run_code(tmp_path):
    """Proof that the test files are dangerous: an unsafe load creates the marker."""
    path = tmp_path / "evil.pt"
    torch.save({"x": RunsCode(tmp_path / "proof")}, path)
    torch.load(path, weights_only=False)
    assert (tmp_path / "proof").exists()


@pytest.mark.parametrize("loader", [load_checkpoint, load_generator, load_classifier, load_encoder])
def test_checkpoint_readers_refuse_bad_and_crafted_files(bad_files, tmp_path, loader):
    for name, (path, words) in bad_files.items():
        with pytest.raises(FaceattrError) as e:
            loader(path)
        one_line(e, path, words)
    assert not (tmp_path / "marker").exists(), "a crafted pickle ran code"


def test_the_refusal_names_what_the_file_would_call(bad_files):
    path, _ = bad_files["crafted pickle (torch.save)"]
    with pytest.raises(FaceattrError, match=r"refused: loading it would call posix\.system"):
        load_generator(path)


def test_checkpoints_with_missing_keys_or_wrong_shapes(tmp_path):
    no_weights = tmp_path / "no_weights.pt"
    weights.save_checkpoint(no_weights, {"config": {"z_dim": 8, "resolution": 16, "width": 256}})
    wrong_shape = gan_checkpoint(tmp_path / "wrong_shape.pt", width=512)  # weights of width 256
    bad_config = gan_checkpoint(tmp_path / "bad_config.pt", resolution=12)
    for loader, path, words in (
            (load_generator, no_weights, "no 'G_ema'"), (load_generator, wrong_shape, "size mismatch"),
            (load_generator, bad_config, "does not build"), (load_classifier, wrong_shape, "not a training checkpoint of enet"),
            (load_encoder, wrong_shape, "no 'E'")):
        with pytest.raises(FaceattrError) as e:
            loader(path)
        one_line(e, path, words)


def test_safetensors_readers_refuse_broken_files(tmp_path):
    g = tiny_gnet()
    wrong = tmp_path / "wrong.safetensors"
    weights.save(g, wrong, "gnet", {**{k: getattr(g, k) for k in GEN_KEYS}, "width": 512})
    enc = tmp_path / "enc.safetensors"
    e = Encoder(8, 16, 128)
    weights.save(e, enc, "encoder", {k: getattr(e, k) for k in ENC_KEYS})
    enet = tmp_path / "enet.safetensors"
    weights.save(ENet(["A"], 16, 256), enet, "enet", {"attr_names": ["A"], "resolution": 16, "width": 128})
    (tmp_path / "empty.safetensors").write_bytes(b"")
    (tmp_path / "random.safetensors").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "dir.safetensors").mkdir()
    for loader, name, words in (
            (load_generator, "empty.safetensors", "not a readable safetensors"),
            (load_generator, "random.safetensors", "not a readable safetensors"),
            (load_encoder, "dir.safetensors", "a folder"), (load_classifier, "none.safetensors", "no such"),
            (load_generator, "wrong.safetensors", "size mismatch"), (load_generator, "enc.safetensors", "expected 'gnet'"),
            (load_classifier, "enet.safetensors", "size mismatch")):
        with pytest.raises(FaceattrError) as e:
            loader(tmp_path / name)
        one_line(e, tmp_path / name, words)


def cli_error(capsys, argv):
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after any progress bar (caching the corpus)
    assert e.value.code == 2 and err.startswith("faceattr: error: "), err
    return err


def test_sample_and_export_report_bad_checkpoints_in_one_line(bad_files, tmp_path, capsys):
    missing = tmp_path / "missing_keys.pt"
    weights.save_checkpoint(missing, {"config": {"z_dim": 8}, "G_ema": {}})
    cases = {**bad_files, "missing keys": (missing, "not a training checkpoint of gnet")}
    for name, (path, words) in cases.items():
        for argv in (["sample", "-n", 1, "--checkpoint", path, "-o", tmp_path / "grid.png"],
                     ["export", "gan", path, "-o", tmp_path / "g.safetensors"],
                     ["export", "classifier", path, "-o", tmp_path / "e.safetensors"]):
            err = cli_error(capsys, argv)
            expect = words.replace("gnet", "enet") if argv[1] == "classifier" else words
            assert str(path) in err and expect in err, (name, argv[0], err)
    assert not any((tmp_path / f).exists() for f in ("grid.png", "g.safetensors", "e.safetensors", "marker"))


def test_a_resume_from_a_bad_checkpoint_is_one_line(bad_files, tiny_corpus, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    foreign = tmp_path / "foreign.pt"
    gan_checkpoint(foreign, Generator(128, 16, 256))  # no optimiser states: not from a training run
    cases = {k: v for k, v in bad_files.items() if k not in ("missing file", "folder")}
    cases["foreign"] = (foreign, "cannot resume from it (no 'G' in it)")
    argv = ["train", "gan", "--data", tiny_corpus, "--out", run, "--resolution", 16, "--width", 256, "--batch", 8,
            "--max-kimg", 0.008, "--eval-n", 0]
    for name, (path, words) in cases.items():
        (run / "checkpoint.pt").write_bytes(path.read_bytes())
        err = cli_error(capsys, argv)
        assert str(run / "checkpoint.pt") in err and words in err, (name, err)
    (run / "checkpoint.pt").unlink()
    (run / "checkpoint.pt").mkdir()
    assert "a folder" in cli_error(capsys, argv)
    assert not (tmp_path / "marker").exists()
