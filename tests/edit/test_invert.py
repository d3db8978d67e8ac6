from functools import partial

import pytest
import torch
from torch import nn

from faceattr.edit import invert as s31
from faceattr.edit import search as s32
from faceattr.edit.invert import discriminator_features, latent_starts
from faceattr.edit.optim import prior_penalty
from faceattr.errors import FaceattrError
from faceattr.nets.gnet import Discriminator
from faceattr.weights import save_checkpoint

Z = 16  # G's z_dim (conftest.py)
# The patent's losses alone, in fp32: the tests switch each extra on where they test it.
invert = partial(s31.invert, bf16=False, prior_weight=0.0)
search = partial(s32.search, bf16=False, prior_weight=0.0, identity_weight=0.0)


def mse(a, b):
    return (a - b).pow(2).flatten(1).mean(1)


def test_inversion_of_a_drawable_face_beats_its_random_start(G, z_true):
    target = G(z_true)
    z1, info = invert(G, target, steps=60, restarts=1, lr=0.1)
    start = mse(G(latent_starts(1, Z).expand(3, Z)), target)
    assert z1.shape == (3, Z) and info["steps"] == 60
    torch.testing.assert_close(info["mse"], mse(G(z1), target))
    assert torch.all(info["mse"] < 0.02) and torch.all(info["mse"] < start / 10)
    assert torch.all(info["psnr"] > 20)


def test_more_restarts_are_never_worse(G, z_true):
    target = G(z_true)
    _, two = invert(G, target, steps=10, restarts=2, lr=0.1)
    _, four = invert(G, target, steps=10, restarts=4, lr=0.1)
    assert torch.all(four["loss"] <= two["loss"] + 1e-6)


def test_batch_equals_one_face_at_a_time(G, z_true):
    target = G(z_true)
    z_all, info = invert(G, target, steps=15, restarts=2, lr=0.1, prior_weight=0.1)
    for i in range(3):
        z_one, one = invert(G, target[i:i + 1], steps=15, restarts=2, lr=0.1, prior_weight=0.1)
        torch.testing.assert_close(z_one[0], z_all[i], atol=1e-4, rtol=1e-4)
        assert one["restart"][0] == info["restart"][i]


def test_encoder_start_feature_and_prior_terms(G, z_true):
    target = G(z_true)
    _, info = invert(G, target, steps=0, init=z_true)  # an exact start needs no step
    assert torch.all(info["mse"] < 1e-10)
    z_far = z_true * 3
    z_free, _ = invert(G, G(z_far), steps=20, init=z_far, lr=0.1)
    z_prior, _ = invert(G, G(z_far), steps=20, init=z_far, lr=0.1, prior_weight=10.0)
    assert torch.all(prior_penalty(z_prior) < prior_penalty(z_free))
    pool = lambda x: nn.functional.avg_pool2d(x, 4)  # noqa: E731
    z_feat, _ = invert(G, target, steps=5, lr=0.1, feature_fn=pool, feature_weight=1.0)
    z_pix, _ = invert(G, target, steps=5, lr=0.1)
    assert not torch.allclose(z_feat, z_pix)
    with pytest.raises(FaceattrError):
        invert(G, torch.zeros(1, 3, 8, 8))


def test_discriminator_features_from_a_run_checkpoint(G, z_true, tmp_path):
    torch.manual_seed(2)
    d = Discriminator(resolution=16, width=256)
    d(torch.zeros(4, 3, 16, 16))  # one power iteration, so the saved spectral-norm state is not the initial one
    save_checkpoint(tmp_path / "checkpoint.pt", {"config": {"resolution": 16, "width": 256, "spectral": True},
                                                  "D": d.state_dict()})
    features = discriminator_features(tmp_path / "checkpoint.pt")
    x = G(z_true)
    maps = features(x)
    assert [m.shape[-1] for m in maps] == [8, 4]
    d.eval()
    torch.testing.assert_close(maps[-1], d.features(x))
    z1, info = invert(G, x, steps=10, lr=0.1, feature_fn=features, feature_weight=1.0)
    assert torch.isfinite(info["loss"]).all()


def test_bf16_and_the_default_extras_still_invert_and_edit(G, E, z_true):
    target = G(z_true)
    z1, info = s31.invert(G, target, steps=60, lr=0.1, bf16=True)
    assert torch.all(info["mse"] < 0.02)
    for t in (1, 0):
        _, found = s32.search(G, E, z1, 0, t, steps=30, strength=10.0, lr=0.1, bf16=True)
        moved = found["s_after"][:, 0] - found["s_before"][:, 0]
        assert torch.all(moved > 0 if t else moved < 0)


def test_inversion_ignores_pixels_outside_the_photo(G, z_true):
    target = G(z_true).clone()
    valid = torch.ones(3, 1, 16, 16)
    valid[..., 10:] = 0
    target[..., 10:] = 1.0  # what a crop past the photo's border holds: not the face
    z_masked, masked = invert(G, target, steps=60, lr=0.1, valid=valid, prior_weight=0)
    z_plain, _ = invert(G, target, steps=60, lr=0.1, prior_weight=0)

    def valid_error(z):
        return (G(z) - target)[..., :10].pow(2).flatten(1).mean(1)

    torch.testing.assert_close(masked["mse"], valid_error(z_masked))
    assert torch.all(masked["mse"] < 0.02) and torch.all(masked["mse"] < valid_error(z_plain))


def test_grey_targets_are_matched_by_their_grey_value(G, z_true):
    from faceattr.edit.invert import luminance

    target = luminance(G(z_true))
    z1, info = invert(G, target, steps=60, lr=0.1, grey=torch.ones(3, dtype=torch.bool), prior_weight=0)
    torch.testing.assert_close(info["mse"], mse(luminance(G(z1)), target))
    assert torch.all(info["mse"] < 0.02)


def test_tuning_fits_each_face_and_leaves_g_net_alone(G):
    """Pivotal tuning: from a latent that draws someone else, each face's own weights bring G(latent)
    closer to it, the shared G-Net is unchanged, and a face's tuning does not depend on its batch mates."""
    from faceattr.nets.generator import PatentGNet

    g = PatentGNet(G)
    before = {n: p.clone() for n, p in g.named_parameters()}
    target = G(torch.randn(2, Z, generator=torch.Generator().manual_seed(9)))
    start = torch.zeros(2, Z)
    tuned, info = s31.tune(g, start, target, 16, steps=15, lr=0.01)
    assert len(tuned) == 2 and info["steps"] == 15
    with torch.no_grad():
        for i in range(2):
            assert mse(tuned[i](start[i:i + 1], 16), target[i:i + 1]) < 0.5 * mse(g(start[i:i + 1], 16), target[i:i + 1])
    assert all(torch.equal(p, before[n]) for n, p in g.named_parameters())
    alone, info_alone = s31.tune(g, start[1:], target[1:], 16, steps=15, lr=0.01)
    assert torch.allclose(info_alone["mse"], info["mse"][1:], rtol=1e-4)
    with torch.no_grad():
        assert torch.allclose(alone[0](start[1:], 16), tuned[1](start[1:], 16), atol=1e-5)


def test_locality_term_keeps_other_latents_drawn_as_before(G):
    """PTI's locality term: latents away from the tuned face's (not the ones the term looked at) are drawn
    closer to the untuned G-Net's drawing with the term than without it, and the face is still fitted."""
    from faceattr.nets.generator import PatentGNet

    g = PatentGNet(G)
    target = G(torch.randn(1, Z, generator=torch.Generator().manual_seed(9)))
    start = torch.zeros(1, Z)
    (free,), _ = s31.tune(g, start, target, 16, steps=30, lr=0.01, locality=0.0, radius=6.0)
    (kept,), _ = s31.tune(g, start, target, 16, steps=30, lr=0.01, locality=1.0, radius=6.0)
    away = torch.randn(16, Z, generator=torch.Generator().manual_seed(4))
    probes = start + 6.0 * away / away.norm(dim=1, keepdim=True)
    with torch.no_grad():
        drift_free, drift_kept = mse(free(probes, 16), g(probes, 16)), mse(kept(probes, 16), g(probes, 16))
        assert drift_kept.mean() < 0.6 * drift_free.mean()
        assert mse(kept(start, 16), target) < 0.5 * mse(g(start, 16), target)


def test_locality_along_the_edit_keeps_that_edit_drawn_as_before(G):
    """With `toward` (the edit's steps) the term looks where the edit goes: latents near `radius` steps
    along it (a step 2 long: 6 units out) drift less from the untuned G-Net than with the term's random faces."""
    from faceattr.nets.generator import PatentGNet

    g = PatentGNet(G)
    target = G(torch.randn(1, Z, generator=torch.Generator().manual_seed(9)))
    start = torch.zeros(1, Z)
    d = torch.nn.functional.normalize(torch.randn(1, Z, generator=torch.Generator().manual_seed(5)), dim=1)
    (random,), _ = s31.tune(g, start, target, 16, steps=30, lr=0.01, locality=1.0, radius=6.0)
    (along,), _ = s31.tune(g, start, target, 16, steps=30, lr=0.01, locality=1.0, radius=3.0, toward=2 * d)
    probes = start + torch.tensor([[5.0], [6.0]]) * d
    with torch.no_grad():
        assert mse(along(probes, 16), g(probes, 16)).mean() < 0.5 * mse(random(probes, 16), g(probes, 16)).mean()
        assert mse(along(start, 16), target) < 0.5 * mse(g(start, 16), target)


def test_tuning_zero_steps_draws_what_g_net_draws(G):
    from faceattr.nets.generator import PatentGNet

    g, z = PatentGNet(G), torch.randn(1, Z)
    (same,), _ = s31.tune(g, z, G(z), 16, steps=0)
    with torch.no_grad():
        assert torch.equal(same(z, 16), g(z, 16))


class TwoExits(nn.Module):
    """A generator with an early exit: 8 px from its first layer alone, 16 px through both (as MobileStyleGAN's
    heads): what S31's coarse-to-fine tuning needs. Records the resolution of every pass."""

    name, latent_shape, native_resolution, default_truncation, z_dim = "toy", (Z,), 16, 1.0, Z

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.coarse, self.fine = nn.Linear(Z, 3 * 8 * 8), nn.Linear(3 * 8 * 8, 3 * 16 * 16)
        self.passes = []

    def tunable_parameters(self, resolution):
        return {n: p for n, p in self.named_parameters() if resolution == 16 or n.startswith("coarse.")}

    def sample_latents(self, n, truncation=None, seed=0):
        return torch.randn(n, Z, generator=torch.Generator().manual_seed(seed))

    def synthesize(self, w, resolution=16):
        self.passes.append(resolution)
        x = torch.tanh(self.coarse(w))
        if resolution == 8:
            return x.view(-1, 3, 8, 8)
        return torch.tanh(self.fine(x)).view(-1, 3, 16, 16)

    def forward(self, w, resolution=16):
        return self.synthesize(w, resolution)


def test_tuning_fits_at_half_the_resolution_first_where_an_early_exit_makes_that_cheaper():
    g = TwoExits()
    w = torch.randn(1, Z, generator=torch.Generator().manual_seed(1))
    target = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(2)) * 2 - 1
    with torch.no_grad():
        before = mse(g(w), target)
    g.passes.clear()
    (tuned,), info = s31.tune(g, w, target, 16, steps=9, lr=0.01, locality=0.0)
    coarse = round(9 * s31.COARSE_SHARE)
    assert g.passes == [8] * coarse + [16] * (9 - coarse) + [16]  # the last: the reported error
    assert info["mse"] < 0.8 * before
