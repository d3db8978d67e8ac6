"""MobileStyleGAN in torch (faceattr.nets.stylegan) and the one G-Net interface (faceattr.nets.generator)."""

import importlib.util
import shutil

import numpy as np
import pytest
import torch

from faceattr.errors import FaceattrError

pytestmark = pytest.mark.skipif(importlib.util.find_spec("random_face") is None,
                                reason="random-face (the MobileStyleGAN weights) is not installed: run `make venv`")

from faceattr.nets import generator, stylegan  # noqa: E402


@pytest.fixture(scope="module")
def openvino_faces():
    """OpenVINO's fp32 images (the corpus's own engine) of seeds 0 and 7, with their styles."""
    import openvino as ov

    folder = stylegan.weights_folder()
    core = ov.Core()
    compiled = core.compile_model(stylegan.read_ir(folder, "SynthesisNetwork"), "CPU",
                                  {"INFERENCE_PRECISION_HINT": "f32"})  # this CPU defaults to bf16
    styles = stylegan.seed_styles([0, 7])
    return styles, [np.asarray(compiled({"style": w[None].numpy()})[compiled.outputs[-1]]) for w in styles]


def test_port_matches_openvino(openvino_faces):
    styles, images = openvino_faces
    _, synthesis = stylegan.load_networks()
    with torch.no_grad():
        for w, ref in zip(styles, images):
            assert np.abs(synthesis(w[None]).numpy() - ref).max() < 1e-3


def test_mapping_matches_openvino():
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(stylegan.read_ir(stylegan.weights_folder(), "MappingNetwork"), "CPU",
                                  {"INFERENCE_PRECISION_HINT": "f32"})
    z = stylegan.latent(3)
    mapping, _ = stylegan.load_networks()
    with torch.no_grad():
        assert np.abs(mapping(torch.from_numpy(z)).numpy() - compiled({"var": z})[compiled.outputs[0]]).max() < 1e-4


def test_wplus_with_equal_rows_is_w_exactly():
    _, synthesis = stylegan.load_networks()
    w = stylegan.seed_styles([5])
    with torch.no_grad():
        assert torch.equal(synthesis(w), synthesis(w[:, None].repeat(1, stylegan.N_STYLES, 1)))


def test_gradient_reaches_the_latent():
    """One directional derivative at a low working resolution: autograd against central differences."""
    g = generator.MobileStyleGAN(wplus=True)
    w = g.sample_latents([11])
    weights = torch.randn(1, 3, 128, 128, generator=torch.Generator().manual_seed(1))
    loss = lambda v: (g.synthesize(v, 128).double() * weights).sum()  # noqa: E731
    latent = w.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss(latent), latent)
    direction = grad / grad.norm()  # steepest ascent: the largest change, well above float32 noise
    eps = 1e-3  # the loss bends sharply along this direction: 1e-2 is 5% off, 1e-3 0.5%
    with torch.no_grad():
        numeric = (loss(w + eps * direction) - loss(w - eps * direction)) / (2 * eps)
    analytic = (grad * direction).sum()
    assert analytic.abs() > 1e-2
    assert abs(analytic - numeric) < 2e-2 * abs(numeric)


def check_interface(g: generator.Generator, resolutions):
    z = g.sample_latents(3, seed=4)
    assert z.shape == (3, *g.latent_shape)
    assert torch.equal(z, g.sample_latents(3, seed=4))
    by_seed = g.sample_latents([8, 9])
    assert torch.equal(by_seed[1:], g.sample_latents([9]))  # a seed's latent does not depend on the batch
    assert g.mean_latent().shape == (1, *g.latent_shape)
    assert g.sample_latents([8], truncation=0.0).allclose(g.mean_latent(), atol=1e-5)
    for r in resolutions:
        latent = by_seed[:1].clone().requires_grad_(True)
        img = g.synthesize(latent, r)
        assert img.shape == (1, 3, r, r) and img.abs().max() <= 1.5
        img.mean().backward()
        assert latent.grad is not None and latent.grad.abs().sum() > 0
    with pytest.raises(FaceattrError):
        g.synthesize(torch.zeros(1, 7))


def test_patent_gnet_obeys_the_interface():
    from faceattr.nets.gnet import Generator

    g = generator.PatentGNet(Generator(width=64).eval().requires_grad_(False))
    assert (g.name, g.latent_shape, g.native_resolution) == ("gnet", (128,), 64)
    check_interface(g, (64, 32, 100))


def test_mobilestylegan_obeys_the_interface():
    g = generator.MobileStyleGAN()
    assert (g.latent_shape, g.native_resolution) == ((512,), 1024)
    assert torch.equal(g.sample_latents([42]), stylegan.seed_styles([42]))  # the corpus's face of seed 42
    check_interface(g, (128,))


@pytest.fixture
def weights_copy(tmp_path, monkeypatch):
    """The four IR files copied to a folder the loader is pointed at."""
    for name in stylegan.FILES:
        shutil.copy(stylegan.weights_folder() / name, tmp_path / name)
    monkeypatch.setattr(stylegan, "package_data_dir", lambda: tmp_path)
    return tmp_path


def one_line_error(match):
    with pytest.raises(FaceattrError, match=match) as e:
        stylegan.weights_folder()
    assert "\n" not in str(e.value) and "random-face" in str(e.value) and "make venv" in str(e.value)


def test_changed_weights_file_is_one_line_error(weights_copy):
    stylegan.weights_folder()  # the copy itself is fine
    path = weights_copy / "SynthesisNetwork.bin"
    path.write_bytes(path.read_bytes()[:1000])
    one_line_error("changed")


def test_missing_weights_file_is_one_line_error(weights_copy):
    (weights_copy / "MappingNetwork.xml").unlink()
    one_line_error("missing")


def test_missing_package_is_one_line_error(monkeypatch):
    monkeypatch.setattr(stylegan, "PACKAGE", "no_such_package_faceattr")
    one_line_error("not installed")


def test_early_exit_heads_approximate_the_exact_face():
    from faceattr.nets import stylegan_heads

    exact, fast = generator.MobileStyleGAN(), generator.MobileStyleGAN(early_exit=True)
    w = exact.sample_latents([200000])  # a held-out seed of the heads' model card
    with torch.no_grad():
        faces = exact.synthesize(w, 512)
        for r in (64, 128, 256):
            approx = fast.synthesize(w, r)
            assert approx.shape == (1, 3, r, r)
            assert stylegan_heads.psnr(approx, generator.resize(faces, r)) > 22


def test_tuned_weights_stay_with_their_face():
    """A face's tuned weights (edit.invert.tune's Tuned) replace the shared ones only in its own calls:
    the up-to-128 px synthesis weights without the noise maps and the style modulations, and MobileStyleGAN
    itself never changes."""
    g = generator.MobileStyleGAN(early_exit=True)
    names = g.tunable_parameters(128)
    assert names and all(n.startswith(("synthesis.input", "synthesis.conv1.", "synthesis.layers."))
                         and not n.endswith(".noise") and ".modulation." not in n for n in names)
    assert not any(n.startswith(("synthesis.layers.5.", "synthesis.layers.6.", "synthesis.to_img")) for n in names)
    w = g.mean_latent()
    with torch.no_grad():
        before = g.synthesize(w, 128)
        shifted = generator.Tuned(g, {n: p + 0.01 for n, p in names.items()}).synthesize(w, 128)
        after = g.synthesize(w, 128)
    assert not torch.allclose(shifted, before) and torch.equal(after, before)
