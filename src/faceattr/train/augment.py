"""Differentiable augmentation (DiffAugment, Zhao et al. 2020) for small face sets.

Applied to real and generated images alike, before D-Net, in both S12 and S13, so G-Net
learns un-augmented faces while D-Net cannot memorise a few thousand training images.
"""

import torch
import torch.nn.functional as F

from faceattr.errors import FaceattrError


def brightness(x):
    return x + (torch.rand(x.size(0), 1, 1, 1, device=x.device, dtype=x.dtype) - 0.5)


def saturation(x):
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (torch.rand(x.size(0), 1, 1, 1, device=x.device, dtype=x.dtype) * 2) + mean


def contrast(x):
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - mean) * (torch.rand(x.size(0), 1, 1, 1, device=x.device, dtype=x.dtype) + 0.5) + mean


def translation(x, ratio=0.125):
    """Shift each image by up to `ratio` of its size, zero-padding (pixel-exact, so still differentiable)."""
    b, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sh, sh + 1, (b, 1, 1), device=x.device)
    dx = torch.randint(-sw, sw + 1, (b, 1, 1), device=x.device)
    gy, gx = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
    gy = torch.clamp(gy.unsqueeze(0) + dy + 1, 0, h + 1)
    gx = torch.clamp(gx.unsqueeze(0) + dx + 1, 0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1])
    bi = torch.arange(b, device=x.device).view(b, 1, 1)
    return padded.permute(0, 2, 3, 1)[bi, gy, gx].permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)


def cutout(x, ratio=0.5):
    """Zero a random square of `ratio` of the image size in each image."""
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    oy = torch.randint(0, h + (1 - ch % 2), (b, 1, 1), device=x.device)
    ox = torch.randint(0, w + (1 - cw % 2), (b, 1, 1), device=x.device)
    gy, gx = torch.meshgrid(torch.arange(ch, device=x.device), torch.arange(cw, device=x.device), indexing="ij")
    gy = torch.clamp(gy.unsqueeze(0) + oy - ch // 2, 0, h - 1)
    gx = torch.clamp(gx.unsqueeze(0) + ox - cw // 2, 0, w - 1)
    mask = torch.ones(b, h, w, device=x.device, dtype=x.dtype)
    mask[torch.arange(b, device=x.device).view(b, 1, 1), gy, gx] = 0
    return x * mask.unsqueeze(1)


POLICIES = {"color": [brightness, saturation, contrast], "translation": [translation], "cutout": [cutout]}


def parse_policy(policy: str) -> list[str]:
    names = [p for p in policy.split(",") if p]
    unknown = set(names) - set(POLICIES)
    if unknown:
        raise FaceattrError(f"unknown augmentation {', '.join(sorted(unknown))}; choose from {', '.join(POLICIES)}")
    return names


def diff_augment(x, policy: str):
    for name in parse_policy(policy):
        for f in POLICIES[name]:
            x = f(x)
    return x
