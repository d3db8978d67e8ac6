from functools import partial

import pytest
import torch
from torch import nn

from faceattr import latent
from faceattr.errors import FaceattrError
from faceattr.latent import discriminator_features, latent_starts, prior_penalty, scores, transfer
from faceattr.nets.gnet import Discriminator, Generator
from faceattr.weights import save_checkpoint

Z = 16
# The patent's losses alone, in fp32: the tests switch each extra on where they test it.
invert = partial(latent.invert, bf16=False, prior_weight=0.0)
search = partial(latent.search, bf16=False, prior_weight=0.0, identity_weight=0.0)


@pytest.fixture(scope="module")
def G():
    torch.manual_seed(0)
    return Generator(z_dim=Z, resolution=16, width=256).eval().requires_grad_(False)


class TinyE(nn.Module):
    """Stands in for E-Net: [-1, 1] images (B, 3, 16, 16) -> logits (B, 2)."""

    attr_names = ["A", "B"]

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.net = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(8 * 8 * 8, 2))

    def forward(self, x):
        return self.net(x)


@pytest.fixture(scope="module")
def E():
    return TinyE().eval().requires_grad_(False)


@pytest.fixture(scope="module")
def z_true():
    return torch.randn(3, Z, generator=torch.Generator().manual_seed(5))


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


def test_transfer_adds_exactly_the_difference():
    g = torch.Generator().manual_seed(0)
    original, g1, g2 = ((torch.rand(2, 3, 16, 16, generator=g) - 0.5) * 0.6 for _ in range(3))
    torch.testing.assert_close(transfer(original, g1, g2), original + g2 - g1)
    big = torch.zeros(2, 3, 64, 64)
    shift = torch.full((2, 3, 16, 16), 0.25)
    torch.testing.assert_close(transfer(big, torch.zeros_like(shift), shift, blur=1.5), big + 0.25)
    sharp = torch.zeros(1, 3, 16, 16)
    sharp[..., 8, 8] = 1
    soft = transfer(torch.zeros(1, 3, 16, 16), torch.zeros_like(sharp), sharp, blur=1.0)
    assert 0 < soft[..., 8, 8].max() < 0.5 and soft[..., 8, 10].min() > 0
    torch.testing.assert_close(transfer(torch.ones(1, 3, 4, 4), -torch.ones(1, 3, 4, 4), torch.ones(1, 3, 4, 4)),
                               torch.ones(1, 3, 4, 4))


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
    z1, info = latent.invert(G, target, steps=60, lr=0.1, bf16=True)
    assert torch.all(info["mse"] < 0.02)
    for t in (1, 0):
        _, found = latent.search(G, E, z1, 0, t, steps=30, strength=10.0, lr=0.1, bf16=True)
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
    from faceattr.latent import luminance

    target = luminance(G(z_true))
    z1, info = invert(G, target, steps=60, lr=0.1, grey=torch.ones(3, dtype=torch.bool), prior_weight=0)
    torch.testing.assert_close(info["mse"], mse(luminance(G(z1)), target))
    assert torch.all(info["mse"] < 0.02)
