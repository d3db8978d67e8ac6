"""EditOptions: one place where every edit option is checked, the same for the CLI, the API and the server."""

import dataclasses

import pytest

from faceattr.edit.options import RANGES, EditOptions, parse_edits
from faceattr.errors import FaceattrError


@pytest.mark.parametrize("name", sorted(RANGES))
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf"), -1e9, 1e9])
def test_every_number_refuses_nan_inf_and_out_of_range(name, bad):
    with pytest.raises(FaceattrError, match=f"^{name} must lie in ") as e:
        EditOptions(**{name: bad})
    assert "\n" not in str(e.value)


def test_integer_options_refuse_fractions_and_non_numbers():
    with pytest.raises(FaceattrError, match="invert_steps must be an integer"):
        EditOptions(invert_steps=2.5)
    with pytest.raises(FaceattrError, match="strength must be a number"):
        EditOptions(strength="strong")
    with pytest.raises(FaceattrError, match="strength must be a number"):
        EditOptions(strength=True)
    with pytest.raises(FaceattrError, match="gain must lie in"):
        EditOptions(gain=float("nan"))
    with pytest.raises(FaceattrError, match="mask must be one of face, head"):
        EditOptions(mask="hair")


def test_ranges_edges():
    EditOptions(strength=0, invert_steps=0)
    EditOptions(strength=2)
    with pytest.raises(FaceattrError, match=r"search_goal must lie in \(0.5, 1.0\]"):
        EditOptions(search_goal=0.5)


def test_updated_and_resolved():
    o = EditOptions().updated(invert_steps=7)
    assert o.invert_steps == 7 and o.search_steps is None
    r = o.resolved({"invert_steps": 100, "search_steps": 9})
    assert r.invert_steps == 7 and r.search_steps == 9  # a given value wins over the G-Net's default
    with pytest.raises(FaceattrError, match="unknown edit option.*speed; valid: .*invert_steps"):
        EditOptions().updated(speed=1)
    assert {f.name for f in dataclasses.fields(EditOptions)} >= set(RANGES)  # every range names a real option


def test_parse_edits():
    names = ["Male", "Young"]
    assert parse_edits(["Male=0", "Young=1"], names) == {"Male": 0, "Young": 1}
    assert parse_edits([("Male", 1)], names) == {"Male": 1}
    assert parse_edits(["Male=0, Young=1", ""], names) == {"Male": 0, "Young": 1}  # the web form's comma lists
    for items, message in ([["Male=0", "Male=1"], "given twice"], [["Male=0,Male=1"], "given twice"],
                           [["Bald=1"], "unknown attribute 'Bald'"], [["Male=2"], "must be 0 \\(remove\\) or 1"],
                           [[], "no attribute to change"]):
        with pytest.raises(FaceattrError, match=message):
            parse_edits(items, names)
