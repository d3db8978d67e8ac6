import signal
import subprocess
import sys
import time

import pytest
import torch

from faceattr.cli import main
from faceattr.nets.gnet import sample
from faceattr.train.gan import GanConfig, Trainer, train
from faceattr.weights import export_generator, load_generator

BATCH = 8


def config(data, out, steps, **kw):
    kimg = steps * BATCH / 1000
    return GanConfig(data=str(data), out=str(out), resolution=16, width=256, batch=BATCH, max_kimg=kimg,
                     ckpt_kimg=kw.pop("ckpt_kimg", kimg), eval_n=0, bf16=False, **kw)


def test_training_writes_checkpoint_samples_logs_and_snapshots(tiny_corpus, tmp_path):
    out = tmp_path / "run"
    history = train(config(tiny_corpus, out, 4, r1_gamma=1.0, r1_every=2, augment="translation,color,cutout"))
    assert (out / "checkpoint.pt").exists()
    assert list((out / "samples").glob("*.png")) and list((out / "snapshots").glob("*.safetensors"))
    assert "loss_d" in (out / "metrics.csv").read_text()
    row = history[-1]
    assert 0 <= row["d_acc_real_heldout"] <= 1 and 0 <= row["d_acc_fake"] <= 1
    g = load_generator(out / "checkpoint.pt")
    assert g.resolution == 16


def test_resume_continues_exactly(tiny_corpus, tmp_path):
    """4 steps straight == 2 steps, stop, resume for 2 more (weights, EMA, optimisers, RNG, data order)."""
    straight = Trainer(config(tiny_corpus, tmp_path / "a", 4))
    straight.run()
    Trainer(config(tiny_corpus, tmp_path / "b", 2)).run()
    resumed = Trainer(config(tiny_corpus, tmp_path / "b", 4, ckpt_kimg=2 * BATCH / 1000))
    assert resumed.step == 2
    resumed.run()
    for a, b in zip(straight.g_ema.state_dict().values(), resumed.g_ema.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for a, b in zip(straight.d.state_dict().values(), resumed.d.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def cli_train(data, out, steps):
    return [sys.executable, "-m", "faceattr", "train", "gan", "--data", str(data), "--out", str(out),
            "--resolution", "16", "--width", "256", "--batch", str(BATCH), "--max-kimg", str(steps * BATCH / 1000),
            "--ckpt-kimg", str(BATCH / 1000), "--eval-n", "0", "--no-bf16"]


def test_kill_9_then_resume_matches_uninterrupted_run(tiny_corpus, tmp_path):
    steps = 60
    subprocess.run(cli_train(tiny_corpus, tmp_path / "a", steps), check=True, capture_output=True)
    proc = subprocess.Popen(cli_train(tiny_corpus, tmp_path / "b", steps), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    ckpt = tmp_path / "b" / "checkpoint.pt"
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert torch.load(ckpt, weights_only=True)["step"] < steps, "killed too late to test resuming"
    subprocess.run(cli_train(tiny_corpus, tmp_path / "b", steps), check=True, capture_output=True)
    assert not list((tmp_path / "b").glob(".checkpoint.pt.*")), "the killed write's temp file is left"
    a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)
    b = torch.load(ckpt, weights_only=True)
    assert a["step"] == b["step"] == steps
    for k in a["G_ema"]:
        torch.testing.assert_close(a["G_ema"][k], b["G_ema"][k], rtol=0, atol=0)


def test_two_processes_keep_identical_weights(tiny_corpus, tmp_path, two_processes):
    steps = two_processes(f"""
        from faceattr.train.gan import GanConfig, Trainer
        t = Trainer(GanConfig(data={str(tiny_corpus)!r}, out={str(tmp_path / 'ddp')!r}, resolution=16, width=256,
                              batch=16, max_kimg=0.08, ckpt_kimg=0.08, eval_n=0, bf16=False))
    """, "t.g, t.d")
    assert steps == 5


def test_bad_options_give_one_line_errors(tiny_corpus, tmp_path, capsys):
    r = subprocess.run(cli_train(tiny_corpus, tmp_path / "x", 1) + ["--loss", "wgan"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "wgan" in r.stderr
    cases = [([], "nowhere"), (["--ckpt-kimg", "0"], "--ckpt-kimg must be a number > 0, not 0.0"),
             (["--batch", "0"], "--batch"), (["--max-kimg", "-1"], "--max-kimg"), (["--lr-g", "nan"], "--lr-g"),
             (["--resolution", "12"], "power of two"), (["--augment", "sparkle"], "sparkle"),
             (["--batch", "6"], "multiple of 4"), (["--device", "tpu"], "--device must be one of auto, cpu, cuda")]
    if not torch.cuda.is_available():
        cases.append((["--device", "cuda"], "--device cuda: no CUDA GPU"))
    for extra, word in cases:
        capsys.readouterr()
        data = tmp_path / "nowhere" if not extra else tiny_corpus
        with pytest.raises(SystemExit) as e:
            main(cli_train(data, tmp_path / "x", 1)[3:] + extra)
        err = capsys.readouterr().err
        assert e.value.code == 2 and err.strip().count("\n") == 0 and word in err, err
        assert not (tmp_path / "x").exists(), f"{extra}: --out was created before the inputs were checked"


def test_export_and_sample_are_deterministic(tiny_corpus, tmp_path):
    train(config(tiny_corpus, tmp_path / "run", 2))
    path = tmp_path / "gnet.safetensors"
    export_generator(tmp_path / "run" / "checkpoint.pt", path)
    g = load_generator(path)
    a, b = sample(g, 3, seed=7), sample(g, 3, seed=7)
    assert a.shape == (3, 16, 16, 3) and a.dtype.name == "uint8" and (a == b).all()
    assert not (a == sample(g, 3, seed=8)).all()
    out = tmp_path / "grid.png"
    cmd = [sys.executable, "-m", "faceattr", "sample", "-n", "4", "--checkpoint", str(path), "-o", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0 and out.exists(), r.stderr
    r = subprocess.run([sys.executable, "-m", "faceattr", "sample", "--checkpoint", str(tmp_path / "none.safetensors"),
                        "-o", str(tmp_path / "g2.png")], capture_output=True, text=True)
    assert r.returncode == 2 and "no such" in r.stderr and not (tmp_path / "g2.png").exists()
