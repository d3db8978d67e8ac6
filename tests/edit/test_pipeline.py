"""The photo editing job (S31-S33 around detection and paste-back) and `faceattr edit`, with tiny
stand-in networks of the real architectures (random weights) in place of the shipped ones."""

import functools
import json
import os

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from faceattr.edit import align
from faceattr import cli
from faceattr.data.images import demo_photo, load_photo
from faceattr.edit import files, pipeline
from faceattr.edit import invert as s31
from faceattr.edit import search as s32
from faceattr.edit.options import PATENT_DEFAULTS, EditOptions
from faceattr.errors import FaceattrError
from faceattr.nets.encoder import Encoder
from faceattr.nets.enet import ENet, ENetGroup
from faceattr.nets.gnet import Generator

R, ATTRS = 16, ["Male", "Smiling"]
FAST = {"gnet": "patent", "encoder": False, "invert_steps": 3, "search_steps": 3}


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_g():
    torch.manual_seed(0)
    return Generator(z_dim=8, resolution=R, width=64).eval().requires_grad_(False)


def tiny_e():
    torch.manual_seed(1)
    return ENet(ATTRS, resolution=R, width=64).eval().requires_grad_(False)


@pytest.fixture(autouse=True)
def stand_ins(monkeypatch):
    """The loaders of the patent G-Net and of E-Net give the tiny networks."""
    monkeypatch.setattr(pipeline, "load_generator", lambda path=None: tiny_g())
    monkeypatch.setattr(pipeline, "load_classifier", lambda path=None: tiny_e())


@pytest.fixture(scope="module")
def astronaut():
    return load_photo(demo_photo())


@pytest.fixture(scope="module")
def two_faces(astronaut):
    """The astronaut at full size beside a half-size copy of her."""
    canvas = np.full((512, 800, 3), 200, np.uint8)
    canvas[:, :512] = astronaut
    canvas[100:356, 530:786] = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)
    return canvas


def far_from(face, shape):
    x, y, w, h = face.box
    far = np.ones(shape[:2], bool)
    far[max(0, int(y - h)):int(y + 2 * h), max(0, int(x - w)):int(x + 2 * w)] = False
    return far


def test_edit_changes_the_face_only(astronaut):
    ed = pipeline.Editor(**FAST)
    (res,) = ed.edit([astronaut], {"Male": 1})
    assert res.error is None and res.image.shape == astronaut.shape and res.image.dtype == np.uint8
    far = far_from(align.detect_faces(astronaut)[0], astronaut.shape)
    assert np.array_equal(res.image[far], astronaut[far])
    assert res.faces[0]["steps"]["search"] > 0 and np.abs(res.image.astype(int) - astronaut).max() > 0


def test_report_fields(astronaut):
    (res,) = pipeline.Editor(**FAST).edit([astronaut], {"Male": 1, "Smiling": 0}, strength=0.5)
    (face,) = res.faces
    assert res.report == {"faces": res.faces}
    assert set(face["s"]) == set(ATTRS)
    assert all(set(v) == {"photo", "before", "after", "result"} and all(0 <= p <= 1 for p in v.values())
               for v in face["s"].values())
    assert face["edits"] == {"Male": 1, "Smiling": 0} and face["strength"] == 0.5
    assert face["mode"] == "transfer" and face["mask"] == EditOptions().mask and face["gain"] in pipeline.GAIN_LADDER
    inv = face["inversion"]
    assert inv["mse"] > 0 and inv["psnr_db"] == pytest.approx(10 * np.log10(4 / inv["mse"]), rel=1e-4)
    assert face["steps"]["invert"] == 3 and 0 <= face["steps"]["search"] <= 3
    assert set(face["seconds"]) == {"detect", "align", "invert", "search", "decode", "paste"}
    assert face["batch_faces"] == 1 and len(face["box"]) == 4 and isinstance(face["reached"], bool)
    json.dumps(res.report)  # serialisable as it is


class Brightness(torch.nn.Module):
    """Stand-in E-Net: every attribute's logit is 20 x the mean pixel value."""

    attr_names, resolution = ATTRS, R
    index, judging = ENet.index, ENet.judging

    def forward(self, x):
        return 20 * x.mean((1, 2, 3))[:, None].repeat(1, len(ATTRS))


@pytest.mark.parametrize("target", [1, 0])
def test_auto_gain_is_the_least_at_which_e_net_sees_the_change(target):
    """S33 "auto": per face the smallest gain of the ladder whose pasted result E-Net scores past
    result_goal; when none does, the one E-Net scores highest (here, with a score rising with the
    gain, the largest); a fixed gain is used as it is."""
    ed = pipeline.Editor(gnet=tiny_g(), enet=Brightness(), encoder=False, mask="head", blur=0.0, result_goal=0.99)
    sign = 1 if target else -1
    crops = np.full((3, R, R, 3), 128, np.uint8)
    g1 = np.full_like(crops, 128)
    g2 = np.stack([np.full((R, R, 3), 128 + sign * d, np.uint8) for d in (20, 40, 1)])  # the last: too weak
    gains = ed.gains(crops, ed.scores(crops), g1, g2, [(0, target)], 1.0, [False] * 3)
    mask_mean = align.face_mask(R, ed.options.feather, "head").mean()
    logit_change = 20 * np.array([20, 40]) / 127.5 * mask_mean  # per unit of gain, on the mean pixel
    need = (np.log(0.99 / 0.01) - sign * 20 * (128 / 127.5 - 1)) / logit_change  # from the crop's own logit
    ladder = np.array(pipeline.GAIN_LADDER)
    expect = [ladder[ladder >= n * 0.999][0] for n in need]
    np.testing.assert_allclose(gains, [*expect, ladder[-1]], rtol=1e-6)
    assert gains[1] < gains[0]  # a stronger change needs less gain
    fixed = pipeline.Editor(gnet=tiny_g(), enet=Brightness(), encoder=False, gain=2.5)
    fixed_gains = fixed.gains(crops, fixed.scores(crops), g1, g2, [(0, target)], 1.0, [False] * 3)
    np.testing.assert_array_equal(fixed_gains, [2.5] * 3)
    with pytest.raises(FaceattrError, match="gain"):
        pipeline.Editor(gnet=tiny_g(), enet=Brightness(), encoder=False, gain="strong")


def test_pick_rungs_wants_every_attribute_past_its_goal():
    """The first rung at which every edited attribute is past its goal, moved `strength` of the way
    from the photo's own score (here per face); where no rung is, the one where the edit reads most."""
    s = np.array([[0.6, 0.5], [0.9, 0.2], [0.995, 0.1], [0.97, 0.001]])[:, None].repeat(2, 1)  # (4 rungs, 2, 2)
    s0 = np.full((2, 2), 0.5)
    rungs = pipeline.pick_rungs(s, s0, [1, 0], 0.99, strength=np.array([1.0, 0.5]))  # add the first, remove the second
    np.testing.assert_array_equal(rungs, [3, 1])  # face 0: no rung has both; face 1: 0.9 >= 0.745, 0.2 <= 0.255
    np.testing.assert_array_equal(pipeline.pick_rungs(s, s0, [1, 0], 0.85), [2, 2])


def test_the_search_goal_is_the_editors_unless_given():
    default = pipeline.Editor(gnet=tiny_g(), enet=Brightness(), encoder=False).options.search_goal
    assert default == PATENT_DEFAULTS["search_goal"]
    assert pipeline.Editor(gnet=tiny_g(), enet=Brightness(), encoder=False, search_goal=0.9).options.search_goal == 0.9


def test_s_before_after_are_e_net_scores_of_g(astronaut):
    """'before'/'after' are E-Net's s on G(z1)/G(z2), as S32 defines it."""
    ed = pipeline.Editor(**FAST)
    z_seen = []
    real_search = s32.search

    def spy(G, E, z1, *a, **k):
        z2, info = real_search(G, E, z1, *a, **k)
        z_seen.append((z1, z2))
        return z2, info

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(s32, "search", spy)
        (res,) = ed.edit([astronaut], {"Smiling": 1})
    (z1, z2), = z_seen
    s1, s2 = s32.scores(ed.G, ed.E, z1, [0, 1]), s32.scores(ed.G, ed.E, z2, [0, 1])
    for j, a in enumerate(ATTRS):
        assert res.faces[0]["s"][a]["before"] == pytest.approx(float(s1[0, j]), abs=0.01)  # via uint8 decode
        assert res.faces[0]["s"][a]["after"] == pytest.approx(float(s2[0, j]), abs=0.01)


def test_all_faces_of_all_photos_in_one_batch(astronaut, two_faces, monkeypatch):
    calls = []

    def spy(fn):
        @functools.wraps(fn)  # keeps the signature the Editor reads its options from
        def counted(G, *args, **kwargs):
            calls.append((fn.__name__, len(args[0] if fn.__name__ == "invert" else args[1])))
            return fn(G, *args, **kwargs)
        return counted

    monkeypatch.setattr(s31, "invert", spy(s31.invert))
    monkeypatch.setattr(s32, "search", spy(s32.search))
    blank, tiny = np.full((300, 300, 3), 128, np.uint8), np.zeros((4, 4, 3), np.uint8)
    results = pipeline.Editor(**FAST).edit([two_faces, blank, tiny, astronaut], {"Male": 0}, all_faces=True)
    assert calls == [("invert", 3), ("search", 3)]
    assert [len(r.faces) for r in results] == [2, 0, 0, 1]
    assert "at least 8x8" in results[2].error and results[2].image is None
    assert results[1].error == "no face found" and results[1].image is None
    assert results[1].report == {"error": "no face found", "faces": []}
    w0, w1 = (f["box"][2] for f in results[0].faces)
    assert w0 > 1.5 * w1  # largest face first
    assert all(f["batch_faces"] == 3 for r in results for f in r.faces)


def test_largest_face_by_default(two_faces):
    (res,) = pipeline.Editor(**FAST).edit([two_faces], {"Male": 0})
    (face,) = res.faces
    assert face["box"][0] < 400  # the full-size astronaut on the left
    right = np.s_[:, 520:]
    assert np.array_equal(res.image[right], two_faces[right])  # the small face is left alone


def test_a_face_is_edited_alike_alone_and_in_a_batch(astronaut, two_faces):
    ed = pipeline.Editor(bf16=False, **FAST)  # fp32: batch numerics agree closely
    (alone,) = ed.edit([astronaut], {"Male": 1})
    together = ed.edit([two_faces, astronaut], {"Male": 1})[1]
    assert np.abs(alone.image.astype(int) - together.image).max() <= 2
    assert alone.faces[0]["s"]["Male"]["after"] == pytest.approx(together.faces[0]["s"]["Male"]["after"], abs=1e-3)


def test_strength_zero_leaves_the_photo(astronaut):
    """No search step: G(z2) - G(z1) is zero, and transfer pastes only the change, so not one pixel moves."""
    (res,) = pipeline.Editor(**FAST).edit([astronaut], {"Male": 1}, strength=0)
    assert res.faces[0]["steps"]["search"] == 0
    assert np.array_equal(res.image, astronaut)


def test_replace_mode_pastes_g_of_z2(astronaut):
    """replace=True (the patent's S33): the face centre becomes G(z2), colour-matched, not the photo."""
    ed = pipeline.Editor(replace=True, **FAST)
    (res,) = ed.edit([astronaut], {"Male": 1}, debug=True)
    assert res.faces[0]["mode"] == "replace"
    face = align.detect_faces(astronaut)[0]
    before, after = (align.align(im, face, 64).crop[24:44, 20:44].astype(int) for im in (astronaut, res.image))
    assert np.abs(after - before).mean() > 10


def test_encoder_start(astronaut):
    torch.manual_seed(2)
    enc = Encoder(z_dim=8, resolution=R, width=64).eval().requires_grad_(False)
    (res,) = pipeline.Editor(**{**FAST, "encoder": enc}).edit([astronaut], {"Male": 1})
    assert res.faces[0]["inversion"]["encoder_start"] is True


def test_debug_strip(two_faces):
    (res,) = pipeline.Editor(**FAST).edit([two_faces], {"Male": 1}, all_faces=True, debug=True)
    s = pipeline.DEBUG_SIZE
    assert res.debug.shape == (2 * (s + 2) + 2, 4 * (s + 2) + 2, 3)  # a row per face, 4 tiles
    aligned = align.align(two_faces, align.detect_faces(two_faces)[0], s).crop
    assert np.array_equal(res.debug[2:2 + s, 2:2 + s], aligned)  # first tile: the aligned original


def test_bad_attribute_and_option():
    ed = pipeline.Editor(**FAST)
    with pytest.raises(FaceattrError, match="unknown attribute 'Bald'; available: Male, Smiling"):
        ed.goals({"Bald": 1})
    with pytest.raises(FaceattrError, match="0 \\(remove\\) or 1"):
        ed.goals({"Male": 2})
    with pytest.raises(FaceattrError, match="unknown edit option.* invert_speed; valid: .*invert_steps"):
        pipeline.Editor(invert_speed=3, **FAST)


def test_options_reach_the_latent_module(astronaut, monkeypatch):
    seen = {}

    def spy(fn):
        @functools.wraps(fn)
        def recorded(*args, **kwargs):
            seen[fn.__name__] = kwargs
            return fn(*args, **kwargs)
        return recorded

    monkeypatch.setattr(s31, "invert", spy(s31.invert))
    monkeypatch.setattr(s32, "search", spy(s32.search))
    ed = pipeline.Editor(gnet="patent", encoder=False, invert_steps=2, restarts=2, prior_weight=0.1, search_steps=2,
                         identity_weight=0.5)
    (res,) = ed.edit([astronaut], {"Male": 1}, strength=0.7)
    assert {k: seen["invert"][k] for k in ("steps", "restarts", "prior_weight")} == {"steps": 2, "restarts": 2,
                                                                                     "prior_weight": 0.1}
    assert seen["search"]["identity_weight"] == 0.5 and seen["search"]["strength"] == 0.7
    assert res.faces[0]["steps"]["invert"] == 2


def test_resolution_mismatch_is_refused():
    torch.manual_seed(0)
    with pytest.raises(FaceattrError, match="E-Net takes 32 px faces but G-Net draws 16 px"):
        pipeline.Editor(gnet="patent", enet=ENet(ATTRS, resolution=32, width=64))


def test_output_paths(tmp_path):
    a, b = tmp_path / "a.jpg", tmp_path / "x" / "a.jpg"
    assert files.output_paths([a], output=tmp_path / "o.png") == [tmp_path / "o.png"]
    assert files.output_paths([a, tmp_path / "b.gif"], out_dir=tmp_path / "out") == [tmp_path / "out/a.jpg",
                                                                                      tmp_path / "out/b.png"]
    with pytest.raises(FaceattrError, match="both be written"):
        files.output_paths([a, b], out_dir=tmp_path / "out")
    with pytest.raises(FaceattrError, match="overwrite the input"):
        files.output_paths([a], out_dir=tmp_path)
    with pytest.raises(FaceattrError, match="-o takes one input"):
        files.output_paths([a, tmp_path / "c.jpg"], output=tmp_path / "o.jpg")


# --------------------------------------------------------------------------------------------
# faceattr edit
# --------------------------------------------------------------------------------------------

def run_cli(*argv):
    """`faceattr ...`; an edit runs on the patent G-Net, whose loader gives the tiny stand-in."""
    argv = [*argv, "--gnet", "patent", "--no-encoder"] if argv[0] == "edit" else argv
    try:
        cli.main([str(a) for a in argv])
    except SystemExit as e:
        return e.code
    return 0


@pytest.fixture
def photos(tmp_path, astronaut):
    good = tmp_path / "in" / "astronaut.jpg"
    good.parent.mkdir()
    Image.fromarray(astronaut).save(good, quality=95)
    bad = tmp_path / "in" / "notes.jpg"
    bad.write_text("not a photo")
    blank = tmp_path / "in" / "wall.png"
    Image.fromarray(np.full((200, 300, 3), 128, np.uint8)).save(blank)
    return good, bad, blank


def test_cli_batch_goes_on_past_bad_files(tmp_path, photos, capsys):
    good, bad, blank = photos
    out = tmp_path / "out"
    code = run_cli("edit", bad, good, blank, "--out-dir", out, "--attr", "Male", "--to", "0",
                   "--invert-steps", 3, "--search-steps", 3)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert err[0] == "faceattr: 2 of 3 photo(s) failed:"
    assert err[1].startswith(f"{bad}: not an image") and err[2] == f"{blank}: no face found" and len(err) == 3
    assert sorted(p.name for p in out.iterdir()) == ["astronaut.jpg"]  # no temporary or partial files
    assert load_photo(out / "astronaut.jpg").shape == (512, 512, 3)


def test_cli_debug_and_report(tmp_path, photos, capsys):
    good = photos[0]
    dst = tmp_path / "edited.png"
    code = run_cli("edit", good, "-o", dst, "--attr", "Male=1", "--attr", "Smiling=0", "--debug", "--report",
                   "--strength", 0.5, "--invert-steps", 3, "--search-steps", 3, "--mask", "face", "--gain", 1.5)
    assert code == 0
    assert "Male" in capsys.readouterr().out
    strip = np.asarray(Image.open(tmp_path / "edited.png.debug.png"))
    assert strip.shape == (pipeline.DEBUG_SIZE + 4, 4 * (pipeline.DEBUG_SIZE + 2) + 2, 3)
    report = json.loads((tmp_path / "edited.png.json").read_text())
    assert report["input"] == str(good) and report["output"] == str(dst)
    (face,) = report["faces"]
    assert face["edits"] == {"Male": 1, "Smiling": 0} and face["strength"] == 0.5
    assert face["mode"] == "transfer" and face["mask"] == "face" and face["gain"] == 1.5
    assert {"s", "inversion", "steps", "seconds", "box"} <= set(face)
    assert face["mask"] == "face" and face["gain"] == 1.5


def test_cli_unknown_attribute_lists_the_known_ones(tmp_path, photos, capsys):
    code = run_cli("edit", photos[0], "-o", tmp_path / "o.jpg", "--attr", "Bald=1")
    err = capsys.readouterr().err
    assert code == 2 and err == "faceattr: error: unknown attribute 'Bald'; available: Male, Smiling\n"
    assert not (tmp_path / "o.jpg").exists()


@pytest.mark.parametrize("args, message", [
    (["--attr", "Male"], "--to 0|1 or --attr Male=0|1"),
    (["--attr", "Male=yes"], "must be 0 (remove) or 1"),
    (["--attr", "Male=0", "--attr", "Male=1"], "attribute Male is given twice"),
    (["--attr", "Male=0,Male=1"], "attribute Male is given twice"),
    (["--attr", "Smiling=1,Male"], "--to 0|1 or --attr Male=0|1"),
    ([], "name an attribute"),
])
def test_cli_bad_edits(tmp_path, photos, capsys, args, message):
    code = run_cli("edit", photos[0], "-o", tmp_path / "o.jpg", *args)
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1


def test_cli_o_with_several_inputs(tmp_path, photos, capsys):
    assert run_cli("edit", photos[0], photos[2], "-o", tmp_path / "o.jpg", "--attr", "Male=1") == 2
    assert "use --out-dir" in capsys.readouterr().err


def test_a_grey_photo_stays_grey(astronaut):
    grey = np.repeat(cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    for replace in (False, True):
        (res,) = pipeline.Editor(replace=replace, **FAST).edit([grey], {"Male": 1})
        assert res.faces[0]["grey"] and align.is_grey(res.image) and not np.array_equal(res.image, grey)
    (res,) = pipeline.Editor(**FAST).edit([astronaut], {"Male": 1})
    assert not res.faces[0]["grey"]


def test_head_mask_and_gain_reach_further(astronaut):
    changed = {}
    face = {"mask": "face", "gain": 1.0}
    for name, opts in {"face": face, "head": {**face, "mask": "head"}, "gain": {**face, "gain": 2.0}}.items():
        (res,) = pipeline.Editor(**FAST, **opts).edit([astronaut], {"Male": 1})
        changed[name] = np.abs(res.image.astype(int) - astronaut)
    assert (changed["head"] > 0).sum() > (changed["face"] > 0).sum()
    assert changed["gain"].sum() > 1.5 * changed["face"].sum()
    with pytest.raises(FaceattrError, match="mask must be one of face, head"):
        pipeline.Editor(mask="hair", **FAST)


def test_stages_are_announced_in_order(astronaut):
    seen = []
    pipeline.Editor(**FAST).edit([astronaut], {"Male": 1}, on_stage=seen.append)
    assert seen == ["detect", "S31", "S32", "S33"]


def test_a_group_runs_only_the_net_of_the_edited_attribute(astronaut):
    """With a group of one-attribute nets, S32 and the gain search call the Male net alone; the report
    still gives every attribute's score, and the edit is the one that Male net makes by itself."""
    torch.manual_seed(2)
    male, smiling = (ENet([a], resolution=R, width=64).eval().requires_grad_(False) for a in ATTRS)
    calls = {a: 0 for a in ATTRS}
    for net in (male, smiling):
        net.register_forward_hook(lambda m, i, o: calls.__setitem__(m.attr_names[0], calls[m.attr_names[0]] + 1))
    group = pipeline.Editor(enet=ENetGroup([male, smiling]), **FAST)
    (res,) = group.edit([astronaut], {"Male": 0})
    (alone,) = pipeline.Editor(enet=male, **FAST).edit([astronaut], {"Male": 0})
    assert calls["Smiling"] == 4  # the report's scores: photo, G(z1), G(z2), result
    assert calls["Male"] > 2 * calls["Smiling"]
    assert set(res.faces[0]["s"]) == set(ATTRS)
    np.testing.assert_array_equal(res.image, alone.image)



@pytest.fixture(scope="module")
def random_directions():
    """Unit directions in W for the tiny E-Net's attributes (random: the plumbing, not the edit's quality)."""
    from faceattr.nets.directions import Directions

    d = Directions(ATTRS, 512)
    d.vectors.copy_(torch.nn.functional.normalize(torch.randn(2, 512, generator=torch.Generator().manual_seed(3)), dim=1))
    return d


def test_the_default_g_net_is_mobilestylegan_and_edits_the_head_only(astronaut, random_directions):
    """The default path: MobileStyleGAN (from the random-face files), S32 along the directions, S33 the
    full-resolution change added over the head; strength 0 changes not one pixel."""
    ed = pipeline.Editor(encoder=False, directions=random_directions, invert_steps=0, tune_steps=2, search_steps=1,
                         max_distance=3.0)
    assert ed.G.name == "mobilestylegan" and ed.resolution == pipeline.STYLE_WORKING
    (res,) = ed.edit([astronaut], {"Male": 1}, debug=True)
    face = res.faces[0]
    assert face["gnet"] == "mobilestylegan" and face["gain"] == 1.0 and 0 < face["latent_distance"] <= 3.0 + 1e-4
    assert face["steps"]["tune"] == 2
    assert not np.array_equal(res.image, astronaut)
    far = far_from(align.detect_faces(astronaut)[0], astronaut.shape)
    assert np.array_equal(res.image[far], astronaut[far])
    (same,) = ed.edit([astronaut], {"Male": 1}, strength=0)
    assert np.array_equal(same.image, astronaut)


def test_tuning_changes_what_s33_draws_not_where_s32_goes(astronaut, random_directions, monkeypatch):
    """S32 searches the untuned G-Net (the space its directions describe); the tuned copies only draw the
    result, and their locality term looks along the edit's own direction, signed towards its target."""
    options = dict(encoder=False, directions=random_directions, invert_steps=0, search_steps=2, max_distance=3.0)
    seen = []
    tune = pipeline.s31.tune
    monkeypatch.setattr(pipeline.s31, "tune", lambda *a, **k: seen.append(k["toward"]) or tune(*a, **k))
    (tuned,) = pipeline.Editor(tune_steps=2, **options).edit([astronaut], {"Male": 0})
    (plain,) = pipeline.Editor(tune_steps=0, **options).edit([astronaut], {"Male": 0})
    assert tuned.faces[0]["latent_distance"] == pytest.approx(plain.faces[0]["latent_distance"], abs=1e-5)
    assert not np.array_equal(tuned.image, plain.image)
    (toward,) = seen
    moves, _ = random_directions.split(["Male"], [])
    torch.testing.assert_close(toward, -moves)


def test_an_unwritable_output_is_refused_before_the_edit(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(FaceattrError, match="is not a writable folder"):
        files.output_paths([tmp_path / "a.jpg"], output=blocker / "o.png")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if not os.access(locked, os.W_OK):  # root may write anywhere: folder modes bind other users only
            with pytest.raises(FaceattrError, match="is not a writable folder"):
                files.output_paths([tmp_path / "a.jpg"], output=locked / "o.png")
    finally:
        locked.chmod(0o700)


def test_a_kept_edit_re_renders_at_any_strength_without_a_new_search(astronaut, random_directions, monkeypatch):
    """Editor.edit(keep=True) -> render(session, s): the edit at strength 1 again, the photo itself at 0,
    and no S31 or S32 on the way."""
    ed = pipeline.Editor(encoder=False, directions=random_directions, invert_steps=0, tune_steps=2, search_steps=2,
                         max_distance=3.0)
    (res,) = ed.edit([astronaut], {"Male": 1}, keep=True)
    monkeypatch.setattr(ed, "invert", None)
    monkeypatch.setattr(ed, "search", None)
    again = ed.render(res.session, 1.0)
    assert np.abs(again.astype(int) - res.image.astype(int)).max() <= 1
    assert np.array_equal(ed.render(res.session, 0.0), astronaut)
    half = ed.render(res.session, 0.5)
    assert not np.array_equal(half, astronaut) and not np.array_equal(half, res.image)
    with pytest.raises(FaceattrError, match="strength"):
        ed.render(res.session, 3.0)


def test_keep_needs_mobilestylegan(astronaut):
    with pytest.raises(FaceattrError, match="MobileStyleGAN"):
        pipeline.Editor(**FAST).edit([astronaut], {"Male": 1}, keep=True)
