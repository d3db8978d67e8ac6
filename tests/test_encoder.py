import subprocess
import sys

import pytest
import torch

from faceattr import weights
from faceattr.edit.invert import invert
from faceattr.nets.encoder import Encoder
from faceattr.nets.gnet import GEN_KEYS
from faceattr.nets.gnet import Generator
from faceattr.train.encoder import EncoderConfig, Trainer
from faceattr.weights import load_encoder

BATCH = 8


@pytest.fixture(scope="module")
def gnet(tmp_path_factory):
    torch.manual_seed(0)
    g = Generator(z_dim=16, resolution=16, width=256)
    path = tmp_path_factory.mktemp("g") / "gnet.safetensors"
    weights.save(g, path, "gnet", {k: getattr(g, k) for k in GEN_KEYS}, half=False)
    return path


def config(gnet, out, steps, **kw):
    kimg = steps * BATCH / 1000
    return EncoderConfig(gnet=str(gnet), out=str(out), width=128, batch=BATCH, lr=1e-3, bf16=False, eval_n=16,
                         max_kimg=kimg, ckpt_kimg=kw.pop("ckpt_kimg", kimg), **kw)


def test_training_lowers_the_loss_and_exports(gnet, tmp_path):
    t = Trainer(config(gnet, tmp_path / "run", 40))
    before = t.evaluate()
    history = t.run()
    after = history[-1]
    assert after["val_z_mse"] < 0.9 * before["val_z_mse"] and after["val_psnr_fake"] > before["val_psnr_fake"]
    assert "loss_rec" in (tmp_path / "run" / "metrics.csv").read_text()
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    exported = load_encoder(tmp_path / "run" / "encoder.safetensors")
    resumed = load_encoder(tmp_path / "run" / "checkpoint.pt")
    t.e.eval()
    torch.testing.assert_close(resumed(x), t.e(x), rtol=0, atol=0)
    torch.testing.assert_close(exported(x), t.e(x), rtol=1e-2, atol=1e-2)  # fp16 weights
    assert isinstance(exported, Encoder) and not any(p.requires_grad for p in exported.parameters())


def test_resume_continues_exactly(gnet, tmp_path):
    straight = Trainer(config(gnet, tmp_path / "a", 4))
    straight.run()
    Trainer(config(gnet, tmp_path / "b", 2)).run()
    resumed = Trainer(config(gnet, tmp_path / "b", 4, ckpt_kimg=2 * BATCH / 1000))
    assert resumed.step == 2
    resumed.run()
    for a, b in zip(straight.e.state_dict().values(), resumed.e.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_encoder_start_helps_inversion(gnet, tmp_path):
    t = Trainer(config(gnet, tmp_path / "run", 60))
    t.run()
    g = t.g
    target = g(torch.randn(4, 16, generator=torch.Generator().manual_seed(9)))
    _, cold = invert(g, target, steps=0)
    _, warm = invert(g, target, steps=0, init=t.e.eval()(target))
    assert warm["mse"].mean() < cold["mse"].mean()


def test_cli_trains_and_reports_bad_input(gnet, tmp_path):
    base = [sys.executable, "-m", "faceattr", "train", "encoder", "--out", str(tmp_path / "cli"), "--width", "128",
            "--batch", "8", "--max-kimg", "0.016", "--ckpt-kimg", "0.016", "--eval-n", "8", "--no-bf16"]
    r = subprocess.run(base + ["--gnet", str(gnet)], capture_output=True, text=True)
    assert r.returncode == 0 and (tmp_path / "cli" / "encoder.safetensors").exists(), r.stderr[-2000:]
    r = subprocess.run(base + ["--gnet", str(tmp_path / "none.safetensors")], capture_output=True, text=True)
    assert r.returncode == 2 and "no such" in r.stderr and "Traceback" not in r.stderr
