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


class LinearG(torch.nn.Module):
    """A generator of the nets.generator interface whose face is a fixed linear map of w (N, 4): grey level
    w[:, 0], so a brightness E-Net reads attribute A from direction e0 and B from e1 (a stripe)."""

    latent_shape, native_resolution, name = (4,), 16, "linear"

    def synthesize(self, w, resolution=16):
        return self.linear(w, resolution).tanh()

    @staticmethod
    def linear(w, resolution):
        img = w[:, 0].view(-1, 1, 1, 1).expand(-1, 3, resolution, resolution).clone()
        img[:, :, :, : resolution // 2] += w[:, 1].view(-1, 1, 1, 1)
        return img


class ReadsLinearG(torch.nn.Module):
    """Logit A: mean brightness; logit B: left half minus right half, in E-Net's interface."""

    attr_names, resolution = ["A", "B"], 16

    def forward(self, x):
        left, right = x[..., : 8].mean((1, 2, 3)), x[..., 8:].mean((1, 2, 3))
        return torch.stack([8 * (left + right) / 2, 8 * (left - right)], 1)


def test_search_along_moves_only_the_edited_direction_and_stops_at_the_goal():
    G, E = LinearG(), ReadsLinearG()
    w1 = torch.zeros(2, 4)
    moves, holds = torch.tensor([[1.0, 0, 0, 0]]), torch.tensor([[0, 1.0, 0, 0]])
    w2, info = s32.search_along(G, E, w1, [(0, 1)], moves, holds, steps=60, goal=0.95, lr=0.1, resolution=16)
    assert torch.all(info["reached"]) and torch.all(info["s_after"][:, 0] >= 0.95)
    assert torch.all(info["steps"] < 60)  # stopped once past the goal, not at the cap
    assert torch.all(w2[:, 0] > 0) and torch.all(w2[:, 2:] == 0)  # nothing off the two directions
    # the hold kept B where it was (0.5) although the edit brightens the left half too
    with torch.no_grad():
        b = torch.sigmoid(E(G.synthesize(w2, 16)))[:, 1]
    assert torch.all((b - 0.5).abs() < 0.1)


def test_search_along_strength_and_distance_cap():
    G, E = LinearG(), ReadsLinearG()
    w1, moves = torch.zeros(1, 4), torch.tensor([[1.0, 0, 0, 0]])
    full, info = s32.search_along(G, E, w1, [(0, 0)], moves, steps=60, goal=0.95, lr=0.1, resolution=16)
    assert full[0, 0] < 0 and info["coefficients"][0, 0] < 0  # removing A darkens
    none, _ = s32.search_along(G, E, w1, [(0, 0)], moves, steps=60, goal=0.95, lr=0.1, resolution=16, strength=0)
    assert torch.equal(none, w1)
    double, _ = s32.search_along(G, E, w1, [(0, 0)], moves, steps=60, goal=0.95, lr=0.1, resolution=16, strength=2)
    torch.testing.assert_close(double, 2 * full)
    capped, info = s32.search_along(G, E, w1, [(0, 0)], moves, steps=60, goal=0.9999, lr=0.5, resolution=16,
                                    max_distance=0.2)
    assert capped[0, 0] == pytest.approx(-0.2) and not info["reached"][0]


class UntiedG(LinearG):
    """LinearG without its tanh: the stripe keeps its contrast however bright the face."""

    def synthesize(self, w, resolution=16):
        return self.linear(w, resolution)


class CorrelatedE(ReadsLinearG):
    """As ReadsLinearG, but brightness also raises B's logit: editing A drags B along."""

    def forward(self, x):
        a, b = super().forward(x).unbind(1)
        return torch.stack([a, b + 0.75 * a], 1)


def test_search_along_holds_a_saturated_attribute_by_its_logit():
    """A held attribute near certainty (B at 0.98) is held by E-Net's logit: as a probability it could climb
    to 0.99998 at almost no cost (measured before the change: logit 3.96 -> 10.95)."""
    G, E = UntiedG(), CorrelatedE()
    w1 = torch.tensor([[0.0, 0.36, 0.0, 0.0]])
    moves, holds = torch.tensor([[1.0, 0, 0, 0]]), torch.tensor([[0, 1.0, 0, 0]])
    w2, info = s32.search_along(G, E, w1, [(0, 1)], moves, holds, steps=20, goal=0.9999, lr=0.3, resolution=16)
    assert info["s_after"][0, 0] > 0.999
    with torch.no_grad():
        before, after = (E(G.synthesize(w, 16))[0, 1] for w in (w1, w2))
    assert before > 3.5 and abs(float(after - before)) < 1.0


class CeilingE(ReadsLinearG):
    """A's logit tops out near 5 and sinks slowly the wrong way (brighter) but steeply the right way (darker
    than -0.2): a face at E-Net's ceiling, where the local gradient points away from the boundary."""

    def forward(self, x):
        b = x.mean((1, 2, 3))
        a = torch.where(b >= -0.2, 5 - 0.5 * b, 5.1 - 20 * (-0.2 - b))
        return torch.stack([a, torch.zeros_like(a)], 1)


def test_search_along_moves_towards_the_target_whatever_the_local_gradient():
    w1, moves = torch.zeros(1, 4), torch.tensor([[1.0, 0, 0, 0]])
    w2, info = s32.search_along(UntiedG(), CeilingE(), w1, [(0, 0)], moves, steps=40, goal=0.9, lr=0.1,
                                resolution=16, max_distance=2.0)
    assert info["coefficients"][0, 0] < -0.2 and info["reached"][0]  # the gradient alone went brighter


def test_search_along_without_the_hold_never_moves_the_held_directions():
    G, E = LinearG(), ReadsLinearG()
    w1 = torch.tensor([[0.0, 0.3, 0, 0]])
    moves, holds = torch.tensor([[1.0, 0, 0, 0]]), torch.tensor([[0, 1.0, 0, 0]])
    free, _ = s32.search_along(G, E, w1, [(0, 1)], moves, holds, steps=10, lr=0.1, resolution=16, hold=False)
    assert torch.equal(free[:, 1:], w1[:, 1:])


def test_search_along_draws_at_e_nets_own_resolution_unless_told():
    class Recording(LinearG):
        def synthesize(self, w, resolution=16):
            seen.append(resolution)
            return super().synthesize(w, resolution)

    seen = []
    s32.search_along(Recording(), ReadsLinearG(), torch.zeros(1, 4), [(0, 1)], torch.tensor([[1.0, 0, 0, 0]]), steps=2)
    assert set(seen) == {ReadsLinearG.resolution}
