"""The latent optimiser shared by S31 (`invert`) and S32 (`search`): Adam run row by row, so every face
of a batch has its own latent and a finished face stops exactly where it finished; bf16 autocast where
the device computes it natively; the per-face loss terms both use.
"""

import math

import torch


class RowAdam:
    """Adam with one state per row of a (N, d) tensor; only the rows passed to `step` move."""

    def __init__(self, z, betas=(0.9, 0.999), eps=1e-8):
        (self.b1, self.b2), self.eps = betas, eps
        self.m, self.v = torch.zeros_like(z), torch.zeros_like(z)
        self.t = torch.zeros(len(z), 1, dtype=z.dtype, device=z.device)

    @torch.no_grad()
    def step(self, z, grad, rows, lr):
        self.t[rows] += 1
        t = self.t[rows]
        m = self.m[rows].mul_(self.b1).add_(grad, alpha=1 - self.b1)
        v = self.v[rows].mul_(self.b2).addcmul_(grad, grad, value=1 - self.b2)
        self.m[rows], self.v[rows] = m, v
        z[rows] -= lr * (m / (1 - self.b1 ** t)) / ((v / (1 - self.b2 ** t)).sqrt() + self.eps)


def descend(z0, objective, steps, lr, finished=None):
    """Minimise objective(z_rows, rows) -> (per-row loss, aux) for every row of z0 independently.

    finished(aux, rows) -> bool per row: those rows stop for good, before the update of that step
    (their latent is the one that met the goal). Returns (z, steps taken per row).
    """
    z = z0.detach().clone()
    adam = RowAdam(z)
    used = torch.zeros(len(z), dtype=torch.long)
    rows = torch.arange(len(z))
    for _ in range(steps):
        zr = z[rows].requires_grad_(True)
        loss, aux = objective(zr, rows)
        (grad,) = torch.autograd.grad(loss.sum(), zr)
        if finished is not None:
            keep = ~finished(aux, rows).cpu()
            rows, grad = rows[keep], grad[keep.to(grad.device)]
            if not len(rows):
                break
        adam.step(z, grad, rows, lr)
        used[rows] += 1
    return z.detach(), used


def native_bf16(device) -> bool:
    """Whether the device computes bf16 natively (CUDA, or a CPU with AVX512-BF16/AMX): there bf16
    autocast ran S31 1.6-1.9x faster at the same PSNR (benchmarks/latent_speed.py); elsewhere it is emulated."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return device.type == "cpu" and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def bf16_autocast(device, enabled):
    """bf16 autocast; enabled=None: where the device has native bf16."""
    enabled = native_bf16(device) if enabled is None else enabled
    return torch.autocast(torch.device(device).type, torch.bfloat16, enabled=enabled)


def prior_penalty(z):
    """(||z|| / sqrt(dim) - 1)^2 per row: N(0, I) latents live on that shell."""
    return (z.norm(dim=1) / math.sqrt(z.shape[1]) - 1).pow(2)


def sqdist(a, b, mask=None):
    """Per-row mean squared difference (times a per-pixel weight map if given)."""
    d = (a.float() - b.float()).pow(2)
    if mask is not None:
        d = d * mask
    return d.flatten(1).mean(1)


def chunked(fn, x, chunk=256):
    return torch.cat([fn(x[i:i + chunk]) for i in range(0, len(x), chunk)])
