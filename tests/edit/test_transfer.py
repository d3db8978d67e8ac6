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
