"""Conversions between network tensors ([-1, 1] float, NCHW) and uint8 pictures, and image grids."""

import math

import numpy as np
import torch
from PIL import Image

from faceattr.fileio import save_image


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] -> uint8 (B, H, W, 3)."""
    x = ((x.detach().float().clamp(-1, 1) + 1) * 127.5 + 0.5).to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def to_float(x) -> torch.Tensor:
    """uint8 (B, H, W, 3) array or (B, 3, H, W) tensor -> float (B, 3, H, W) in [-1, 1]."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.array(x)).permute(0, 3, 1, 2)  # a copy: memmaps are read-only
    return x.float().div(127.5).sub(1)


def grid(images: np.ndarray, ncol: int | None = None, pad: int = 2) -> Image.Image:
    """uint8 (B, H, W, 3) -> one PIL image, `ncol` per row (default: near-square)."""
    b, h, w, _ = images.shape
    ncol = ncol or math.ceil(math.sqrt(b))
    nrow = math.ceil(b / ncol)
    canvas = np.full((nrow * (h + pad) + pad, ncol * (w + pad) + pad, 3), 255, np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, ncol)
        canvas[pad + r * (h + pad):pad + r * (h + pad) + h, pad + c * (w + pad):pad + c * (w + pad) + w] = im
    return Image.fromarray(canvas)


def save_grid(images: np.ndarray, path, ncol: int | None = None):
    save_image(grid(images, ncol), path)
