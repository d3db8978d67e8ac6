"""Judging edits of real photos (eval/edits.py) with a tiny stand-in editor."""

import numpy as np
import torch

from faceattr.data.images import demo_photo
from faceattr.edit.pipeline import Editor
from faceattr.eval.edits import Look, measure_edits, real_photos, summarise_edits
from faceattr.nets.enet import ENet
from faceattr.nets.gnet import Generator


def test_real_photos_come_from_the_packages():
    photos = real_photos(orl_per_person=2)
    assert photos[0] == demo_photo() and all(p.exists() for p in photos)
    assert sum(p.suffix == ".pgm" for p in photos) == 80  # 40 people x 2
    assert sum(p.suffix == ".jpg" for p in photos) >= 6


def test_edits_are_judged_by_the_labellers_rule():
    torch.manual_seed(0)
    g = Generator(z_dim=8, resolution=16, width=64).eval().requires_grad_(False)
    e = ENet(["Male", "Young"], resolution=16, width=64).eval().requires_grad_(False)
    editor = Editor(g, e, False, invert_steps=2, search_steps=2)
    m = measure_edits(editor, [demo_photo()], attrs=("Male",))
    (row,) = m["photos"]
    assert row["direction"] == "to_male" and row["before"]["p_male"] < 0.5  # the astronaut is a woman
    assert row["output_face_found"] and -1 <= row["sface_cosine"] <= 1 and row["dlib_distance"] >= 0
    assert row["judge_agrees"] == (row["after"]["p_male"] >= 0.5)
    assert m["summary"]["Male"]["all"]["n"] == 1 and not m["skipped"] and len(m["pairs"]) == 1


def test_the_labellers_rule_and_the_edit_summary():
    look = Look(face=None, crop=None, p_male=0.5, age=39.9, sface=None, dlib=None)
    assert look.has("Male") and look.has("Young")
    old_woman = Look(None, None, 0.49, 40.0, None, None)
    assert not old_woman.has("Male") and not old_woman.has("Young")
    row = {"attr": "Young", "e_net_reached": True, "psnr_db": 20.0}
    rows = [{**row, "direction": "to_old", "judge_agrees": True, "output_face_found": True, "sface_cosine": 0.9,
             "dlib_distance": 0.3},
            {**row, "direction": "to_old", "judge_agrees": False, "output_face_found": False, "sface_cosine": None,
             "dlib_distance": None},
            {**row, "direction": "to_young", "judge_agrees": False, "output_face_found": True, "sface_cosine": 0.5,
             "dlib_distance": 0.7}]
    s = summarise_edits(rows)["Young"]
    assert s["to_old"]["n"] == 2 and s["to_old"]["judge_agrees"] == 0.5 and s["to_old"]["output_face_found"] == 0.5
    assert s["to_old"]["sface_cosine_median"] == 0.9 and s["to_old"]["dlib_same_person"] == 1.0  # over found faces
    assert s["all"]["n"] == 3 and s["all"]["dlib_same_person"] == 0.5
    assert np.isclose(s["all"]["dlib_distance_median"], 0.5)
