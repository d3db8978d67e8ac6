import torch

from faceattr.edit.transfer import transfer


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


def test_redraw_keeps_the_photo_where_nothing_changed_and_draws_g_of_z2_where_the_face_moved():
    """redraw: the photo's residual (original - G(z1)) stays where the change is nil and gives way to G(z2)
    itself where the change is large, so the photo's old edges do not ghost beside the moved ones."""
    g = torch.Generator().manual_seed(1)
    original, g1 = ((torch.rand(1, 3, 64, 64, generator=g) - 0.5) * 0.6 for _ in range(2))
    g2 = g1.clone()
    g2[..., :, 32:] += 0.8  # the right half moved a lot, the left half not at all
    out = transfer(original, g1, g2, redraw=0.1)
    torch.testing.assert_close(out[..., :, :24], original[..., :, :24])  # the photo, with its own detail
    torch.testing.assert_close(out[..., :, 40:], g2[..., :, 40:].clamp(-1, 1), atol=1e-3, rtol=0)
    torch.testing.assert_close(transfer(original, g1, g2, redraw=0.0), transfer(original, g1, g2))
