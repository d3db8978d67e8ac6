from functools import partial

import pytest
import torch

from faceattr.edit import search as s32
from faceattr.edit.search import scores
from faceattr.errors import FaceattrError


def mse(a, b):
    return (a - b).pow(2).flatten(1).mean(1)


# The patent's loss alone, in fp32: the tests switch each extra on where they test it.
search = partial(s32.search, bf16=False, prior_weight=0.0, identity_weight=0.0)


def test_search_moves_the_score_the_requested_way(G, E, z_true):
    for target in (1, 0):
        z2, info = search(G, E, z_true, 0, target, steps=30, strength=10.0, lr=0.1)
        moved = info["s_after"][:, 0] - info["s_before"][:, 0]
        assert torch.all(moved > 0.02 if target else moved < -0.02), (target, info)
        torch.testing.assert_close(info["s_after"], scores(G, E, z2, [0], bf16=False))


def test_strength_zero_leaves_the_latent_unchanged(G, E, z_true):
    z2, info = search(G, E, z_true, 0, 1, steps=10, strength=0.0)
    assert torch.equal(z2, z_true) and torch.all(info["steps"] == 0)


def test_several_attributes_at_once(G, E, z_true):
    z2, info = search(G, E, z_true, [(0, 1), (1, 0)], steps=30, strength=10.0, lr=0.1)
    d = info["s_after"] - info["s_before"]
    assert info["s_before"].shape == (3, 2)
    assert torch.all(d[:, 0] > 0) and torch.all(d[:, 1] < 0)
    with pytest.raises(FaceattrError):
        search(G, E, z_true, 0, 0.5)


def test_early_stop_freezes_each_face_where_it_reached_its_goal(G, E, z_true):
    s0 = scores(G, E, z_true, [0], bf16=False)[:, 0]
    strength = torch.tensor([0.1, 0.5, 1.0])
    z2, info = search(G, E, z_true, 0, 1, steps=40, strength=strength, goal=0.99, lr=0.05)
    steps = info["steps"]
    assert steps[0] < steps[2] and info["reached"][0]
    thresh = s0 + strength * (0.99 - s0)
    assert torch.all(info["s_after"][info["reached"], 0] >= thresh[info["reached"]] - 1e-6)
    for i in range(3):  # a finished face holds the latent of the step it finished at
        z_i, _ = search(G, E, z_true[i:i + 1], 0, 1, steps=int(steps[i]), strength=100.0, lr=0.05)
        torch.testing.assert_close(z_i[0], z2[i], atol=1e-4, rtol=1e-4)


def test_identity_term_keeps_the_face_closer(G, E, z_true):
    kw = dict(steps=15, strength=10.0, lr=0.1)
    free, _ = search(G, E, z_true, 0, 1, identity_weight=0.0, **kw)
    kept, _ = search(G, E, z_true, 0, 1, identity_weight=50.0, **kw)
    assert torch.all(mse(G(kept), G(z_true)) < mse(G(free), G(z_true)))
    masked, _ = search(G, E, z_true, 0, 1, identity_weight=50.0, identity_mask=torch.zeros(1, 1, 16, 16), **kw)
    torch.testing.assert_close(masked, free)  # an all-zero mask switches the term off
