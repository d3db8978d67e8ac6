"""Shared fixtures: tiny face-like corpora the tests make themselves (no ../shared, no network)."""

import numpy as np
import pytest
from PIL import Image


def face_like(rng, size):
    """A smooth random blob picture: enough structure for a few GAN steps, cheap to make."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = np.zeros((size, size, 3))
    for c in range(3):
        cy, cx, r = rng.uniform(0.3, 0.7, 3)
        img[..., c] = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (0.05 + 0.1 * r))
    return (img * 255).astype(np.uint8)


@pytest.fixture
def tiny_corpus(tmp_path):
    """A CelebA-layout folder of 40 unlabelled 16x16 images."""
    root = tmp_path / "corpus"
    (root / "img_align_celeba").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(40):
        Image.fromarray(face_like(rng, 16)).save(root / "img_align_celeba" / f"{i:06d}.png")
    return root
