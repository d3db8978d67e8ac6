"""S31 through the frozen G-Net, batched: find z1 with G(z1) = O by descending the patent's loss
1/2 (O - I)^2, I = G(z) (`invert`); then, beyond the patent, fit G-Net's own weights to each face
around its z1 by the same loss (`tune`, pivotal tuning). S32 is `edit.search`, S33 `edit.transfer`.

Every function takes a batch: each face has its own latent(s), losses are per face and only summed,
and G-Net is batch-independent, so a face's result does not depend on its batch mates. Optimisation
is Adam run row by row (`edit.optim.RowAdam`), so a finished face stops exactly where it finished.
Beyond the patent, each switchable: an encoder start (`nets.encoder.Encoder`, trained by
`train/encoder.py`), a feature loss (e.g. D-Net's feature maps, `discriminator_features`) and a
prior term keeping ||z|| near sqrt(dim).
"""

import math

import torch
from torch import nn

from faceattr.edit.options import PATENT_DEFAULTS, EditOptions
from faceattr.edit.optim import bf16_autocast, descend, prior_penalty, sqdist
from faceattr.errors import FaceattrError
from faceattr.nets.generator import Tuned, resize


def luminance(x):
    """(B, 3, H, W) -> the same shape, each pixel replaced by its grey value (ITU-R 601 weights)."""
    w = x.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True).expand_as(x)


class AtResolution(nn.Module):
    """A G-Net of `nets.generator` as S31 and S32 run it: flat latents (N, z_dim) -> faces (N, 3, R, R) at
    the working resolution R (a W+ latent (N, 23, 512) travels as (N, 23 * 512))."""

    def __init__(self, G, resolution: int):
        super().__init__()
        self.G, self.resolution = G, resolution
        self.z_dim = math.prod(G.latent_shape)

    def forward(self, z):
        return self.G.synthesize(z.view(len(z), *self.G.latent_shape), self.resolution)


def _as_list(maps):
    return list(maps) if isinstance(maps, (list, tuple)) else [maps]


def _feature_distance(fa, fb):
    """Sum over feature maps of the per-row mean squared difference; a map or a list of maps."""
    return sum(sqdist(a, b) for a, b in zip(_as_list(fa), _as_list(fb)))


def psnr(mse):
    """PSNR in dB of a mean squared error measured on [-1, 1] images (peak-to-peak 2)."""
    return 10 * torch.log10(4 / mse.clamp_min(1e-12))


def _pixel_weights(valid, device):
    """(B, 1, R, R) valid shares -> weights normalised per face, so that a mean over pixels is a mean over
    the valid pixels."""
    valid = valid.to(device, torch.float32)
    return valid / valid.mean((1, 2, 3), keepdim=True).clamp_min(1e-3)


def latent_starts(n, dim, seed=0):
    """n starting latents; the k-th is the same for every face and every n (so more restarts only add)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.cat([torch.randn(1, dim, generator=gen) for _ in range(n)])


def invert(G, target, steps=PATENT_DEFAULTS["invert_steps"], restarts=1, init=None, jitter=0.0, feature_fn=None,
           feature_weight=0.0, prior_weight=0.1, lr=PATENT_DEFAULTS["invert_lr"], seed=0, bf16=None, valid=None,
           grey=None):
    """S31: find z1 per face such that G(z1) reproduces `target` (B, 3, R, R) in [-1, 1].

    Loss per face: 1/2 mean over pixels of (O - G(z))^2 (the patent's 1/2 (O - I)^2, averaged so the
    weights below do not depend on the resolution) + feature_weight * feature distance between
    feature_fn(O) and feature_fn(G(z)) + prior_weight * prior_penalty(z). Adam on z.
    Starts: `restarts` per face, run as extra batch rows; the best by final loss is kept. Without
    `init` they are `latent_starts` (random N(0, I)); with `init` (B, dim), e.g. an encoder's output,
    restart k starts at init + jitter * latent_starts[k] and restart 0 exactly at init.
    bf16: autocast (None: where native, see `native_bf16`); the final loss and errors are fp32.
    valid: (B, 1, R, R) pixel weights, 0 where the target has no pixels (a crop reaching past the
    photo's border): the loss and the errors are means over the valid pixels only.
    grey: (B,) bool, faces from grey photos: G(z) is compared by its grey value, so a colour face
    that greys to the photo is as good as a grey one (G-Net never drew grey faces).
    -> z1 (B, dim) and info: mse (B,) on [-1, 1] images, psnr (B,) dB, loss (B,), restart (B,), steps.
    Defaults: the patent G-Net's (`edit.options.PATENT_DEFAULTS`; measurements in docs/EXPERIMENTS.md).
    """
    if target.dim() != 4 or target.shape[1:] != (3, G.resolution, G.resolution):
        raise FaceattrError(f"targets must be (B, 3, {G.resolution}, {G.resolution}), got {tuple(target.shape)}")
    dev = next(G.parameters()).device
    target = target.to(dev, torch.float32)
    b, k = len(target), restarts
    valid = None if valid is None else _pixel_weights(valid, dev)
    grey = None if grey is None or not bool(torch.as_tensor(grey).any()) else torch.as_tensor(grey).to(dev)
    starts = latent_starts(k, G.z_dim, seed).to(dev)
    if init is None:
        z0 = starts.repeat(b, 1)
    else:
        starts[0] = 0
        z0 = init.to(dev, torch.float32).repeat_interleave(k, 0) + jitter * starts.repeat(b, 1)
    amp = bf16_autocast(dev, bf16)
    with torch.no_grad(), amp:
        tfeat = _as_list(feature_fn(target)) if feature_fn is not None and feature_weight else None

    def objective(z, rows, amp=amp):
        face = rows // k
        with amp:
            img = G(z)
            if grey is not None:
                img = torch.where(grey[face].view(-1, 1, 1, 1), luminance(img), img)
            mse = sqdist(img, target[face], None if valid is None else valid[face])
            loss = 0.5 * mse
            if tfeat is not None:
                loss = loss + feature_weight * _feature_distance(feature_fn(img), [f[face] for f in tfeat])
        if prior_weight:
            loss = loss + prior_weight * prior_penalty(z)
        return loss, mse.detach()

    z, _ = descend(z0, objective, steps, lr)
    with torch.no_grad():  # the final loss and the reported errors in fp32
        rows = torch.arange(len(z), device=dev)
        loss, mse = map(torch.cat, zip(*(objective(z[r], r, bf16_autocast(dev, False)) for r in rows.split(64))))
    best = loss.view(b, k).argmin(1)
    pick = torch.arange(b, device=dev) * k + best
    mse = mse[pick].cpu()
    return z[pick], {"mse": mse, "psnr": psnr(mse), "loss": loss[pick].cpu(), "restart": best.cpu(), "steps": steps}


LOCALITY_SEED = 1_000_003  # the random faces the locality term looks at: the same for every face and run
LOCALITY_EVERY = 3  # its pass on every third step at 3x the weight: a third of its cost (docs/EXPERIMENTS.md)
COARSE_SHARE = 2 / 3  # the first steps at half the resolution: as close a fit in ~70% of the time (docs/EXPERIMENTS.md)


def tune(G, latents, target, resolution: int, steps: int, lr: float = EditOptions.tune_lr,
         locality: float = EditOptions.tune_locality, radius: float = EditOptions.max_distance, toward=None,
         valid=None, grey=None):
    """S31, second half (beyond the patent; pivotal tuning as in PTI, Roich et al. 2022): with each face's
    latent from `invert` held fixed, the weights that draw it at `resolution` (G.tunable_parameters) are
    fitted to that face by the patent's loss 1/2 mean (O - G(latent))^2 (Adam, each tensor's step `lr` times
    its RMS), so G(latent) is this person and not a look-alike. Coarse to fine, where G draws half the
    resolution with fewer of those weights (an early exit): the first COARSE_SHARE of the steps compare
    at half the resolution (O box-filtered), where a pass skips the costliest block.
    PTI's locality term keeps the edits: every LOCALITY_EVERY steps a latent w + `radius` * step (S32's
    reach, max_distance) must still be drawn as the untuned G-Net draws it, LOCALITY_EVERY * `locality` *
    1/2 mean (G_tuned(w_r) - G(w_r))^2 at that step's resolution; without it the tuned weights paint the
    photo whatever the latent, and S32's moves fade (docs/EXPERIMENTS.md). The steps are the rows of
    `toward` (k, dim), the edit's moves in S32's units, in turn (where else the tuned weights drew aged
    faces as textured masks), or, with None, unit steps towards random faces (PTI).
    One face at a time: each gets its own weights; `G` itself never changes. target (B, 3, R, R) in [-1, 1];
    latents (B, *shape); valid and grey as in `invert`. -> [Tuned generator per face] and info: mse (B,),
    psnr (B,) after tuning at `resolution`.
    """
    shared = G.tunable_parameters(resolution)
    weights = None if valid is None else _pixel_weights(valid, target.device)
    coarse = round(steps * COARSE_SHARE) if len(G.tunable_parameters(resolution // 2)) < len(shared) else 0
    sizes = [resolution // 2 if k < coarse else resolution for k in range(steps)]
    checks = list(range(0, steps, LOCALITY_EVERY)) if locality else []
    tuned, errors = [], []
    for i in range(len(target)):
        params = {n: p.detach().clone().requires_grad_(True) for n, p in shared.items()}
        g = Tuned(G, params)
        w = latents[i:i + 1].detach()
        # the face and its pixel weights at each resolution (box filter: the weights' mean stays 1)
        o = {r: resize(target[i:i + 1].float(), r) for r in set(sizes) | {resolution}}
        weight = {r: None if weights is None else resize(weights[i:i + 1], r) for r in o}
        is_grey = grey is not None and bool(grey[i])
        if checks:
            if toward is None:
                away = G.sample_latents(len(checks), truncation=1.0, seed=LOCALITY_SEED).to(w.device) - w
                away = away / away.norm(dim=-1, keepdim=True)  # per style row for W+
            else:
                away = toward.to(w.device, torch.float32)
                away = away[:, None].expand(-1, *w.shape[1:-1], -1) if w.ndim == 3 else away
            ball = w + radius * away
            kept = {}  # (point, resolution) -> the untuned drawing, each drawn once (batch 1: see below)
            with torch.no_grad():
                for key in {(j % len(ball), sizes[k]) for j, k in enumerate(checks)}:
                    kept[key] = G.synthesize(ball[key[0]][None], key[1])
        # each tensor's step is `lr` times its own RMS: one lr for weights whose scales differ 100-fold
        opt = torch.optim.Adam([{"params": [p], "lr": lr * float(p.detach().square().mean().sqrt().clamp_min(1e-3))}
                                for p in params.values()])

        def drawn(img):
            return luminance(img) if is_grey else img

        for k, r in enumerate(sizes):
            opt.zero_grad(set_to_none=True)  # weights unused at r get no gradient, and Adam leaves them
            (0.5 * sqdist(drawn(g.synthesize(w, r)), o[r], weight[r]).sum()).backward()
            if k in checks:  # a second batch-1 pass: on this CPU one batch of 2 costs 3 of 1 (cache-bound)
                j = k // LOCALITY_EVERY % len(ball)
                (LOCALITY_EVERY * locality * 0.5 * sqdist(g.synthesize(ball[j:j + 1], r), kept[j, r]).sum()).backward()
            opt.step()
        for p in params.values():
            p.requires_grad_(False)
        with torch.no_grad():
            errors.append(sqdist(drawn(g.synthesize(w, resolution)), o[resolution], weight[resolution]).cpu())
        tuned.append(g)
    mse = torch.cat(errors)
    return tuned, {"mse": mse, "psnr": psnr(mse), "steps": steps}


def discriminator_features(checkpoint):
    """A feature_fn from a GAN run's checkpoint.pt: D-Net's feature maps after each block (D does not
    ship; the patent discards it after S14, so this is for runs that kept their checkpoint)."""
    from faceattr.nets.gnet import Discriminator
    from faceattr.weights import load_checkpoint

    ckpt = load_checkpoint(checkpoint)
    cfg = ckpt["config"]
    d = Discriminator(cfg["resolution"], cfg["width"], spectral=cfg["spectral"])
    d.load_state_dict(ckpt["D"])
    d.eval().requires_grad_(False)

    def features(x):
        maps = []
        for layer in d.features:
            x = layer(x)
            if isinstance(layer, nn.LeakyReLU):
                maps.append(x)
        return maps

    return features
