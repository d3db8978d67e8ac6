import pytest
import torch

from faceattr.nets.gnet import Discriminator, Generator, MinibatchStd


@pytest.mark.parametrize("res", [16, 64, 128])
def test_shapes_and_range(res):
    g, d = Generator(resolution=res), Discriminator(resolution=res)
    x = g(torch.randn(4, 128))
    assert x.shape == (4, 3, res, res)
    assert x.abs().max() <= 1
    assert d(x).shape == (4,)


def test_bad_resolution():
    with pytest.raises(ValueError):
        Generator(resolution=48)


def test_generator_output_does_not_depend_on_batch_mates():
    """Inversion and editing batch many latents: a face must not change with its neighbours."""
    torch.manual_seed(0)
    g = Generator(resolution=32).eval()
    z = torch.randn(5, 128)
    together = g(z)
    alone = torch.cat([g(z[i:i + 1]) for i in range(5)])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-4)


def test_minibatch_std_groups_never_mix_real_and_fake_halves():
    m = MinibatchStd(group=4)
    real, fake = torch.zeros(4, 2, 3, 3), torch.randn(4, 2, 3, 3) * 5
    out = m(torch.cat([real, fake]))
    assert torch.all(out[:4, -1] == out[0, -1, 0, 0]) and out[0, -1, 0, 0] < 1e-3
    assert out[4, -1, 0, 0] > 1
