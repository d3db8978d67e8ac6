"""S32 `search`: from z1, find z2 that adds (target 1) or removes (target 0) an attribute by descending
1/2 (1 - s)^2 or 1/2 (0 - s)^2, s = sigmoid(E(G(z))[:, attr]); beyond the patent, a prior term, an
identity term and a strength-dependent stop. Batched like `invert`: a face's result does not depend on
its batch mates.
"""

import torch

from faceattr.edit.options import PATENT_DEFAULTS, STYLEGAN_DEFAULTS, EditOptions
from faceattr.edit.optim import RowAdam, bf16_autocast, chunked, descend, prior_penalty, sqdist
from faceattr.errors import FaceattrError


def _goals(attr_index, target, n):
    """-> (attribute indices, targets (n, A)) from one index + target or a list of (index, target)."""
    pairs = list(attr_index) if target is None else [(attr_index, target)]
    if not pairs:
        raise FaceattrError("no attribute to change")
    idx = [int(a) for a, _ in pairs]
    t = torch.stack([torch.as_tensor(v, dtype=torch.float32).expand(n) for _, v in pairs], 1)
    if not torch.all((t == 0) | (t == 1)):
        raise FaceattrError("attribute targets must be 1 (add) or 0 (remove)")
    return idx, t


def scores(G, E, z, attr_index, bf16=None):
    """s = sigmoid(E(G(z))) for the given attribute indices: (B, A) probabilities."""
    with torch.no_grad(), bf16_autocast(next(G.parameters()).device, bf16):
        return chunked(lambda x: torch.sigmoid(E(G(x)).float()[:, attr_index]), z)


def search(G, E, z1, attr_index, target=None, steps=PATENT_DEFAULTS["search_steps"], strength=1.0,
           goal=PATENT_DEFAULTS["search_goal"], prior_weight=0.1, identity_weight=1.0, identity_mask=None,
           lr=PATENT_DEFAULTS["search_lr"], bf16=None):
    """S32: from z1 (B, dim) find z2 whose face has (target 1) or lacks (target 0) the attribute.

    `attr_index, target`: one E-Net output index and 0/1 (or a per-face (B,) tensor), or a list of
    (index, target) pairs with target=None to change several attributes at once.
    Loss per face, summed over its attributes: exactly the patent's 1/2 (t - s)^2 with
    s = sigmoid(E(G(z))[:, index]); plus, if switched on, prior_weight * prior_penalty(z) and
    identity_weight * 1/2 mean over pixels of identity_mask * (G(z) - G(z1))^2 (keep the person;
    the mask, (1 or B, 1, R, R) weights, e.g. 0 where the attribute lives, defaults to all ones).
    Strength: a face stops (its latent freezes, early stop) once every attribute has moved
    `strength` of the way from its starting score s0 to the goal score (`goal` to add, 1 - `goal`
    to remove): threshold s0 + strength * (goal_t - s0), kept inside (0.001, 0.999). Strength 0
    leaves z unchanged; a face already past the goal is left unchanged; strength > 1 goes past the
    goal. `steps` caps the work. `strength` may be a per-face (B,) tensor.
    -> z2 (B, dim) and info: s_before, s_after (B, A), reached (B,) bool, steps (B,) per face.
    Defaults: the patent G-Net's (`edit.options.PATENT_DEFAULTS`; measurements in docs/EXPERIMENTS.md).
    """
    dev = next(G.parameters()).device
    z1 = z1.to(dev, torch.float32)
    idx, t = _goals(attr_index, target, len(z1))
    t = t.to(dev)
    s0 = scores(G, E, z1, idx, bf16).to(dev)
    strength = torch.as_tensor(strength, dtype=torch.float32, device=dev).reshape(-1, 1)
    goal_t = torch.where(t == 1, goal, 1 - goal)
    thresh = (s0 + strength * (goal_t - s0)).clamp(1e-3, 1 - 1e-3)
    amp = bf16_autocast(dev, bf16)
    ref = None
    if identity_weight:
        with torch.no_grad(), amp:
            ref = chunked(G, z1)
    identity_mask = None if identity_mask is None else torch.as_tensor(identity_mask).to(dev, torch.float32)

    def objective(z, rows):
        with amp:
            img = G(z)
            s = torch.sigmoid(E(img).float()[:, idx])
            loss = (0.5 * (t[rows] - s).pow(2)).sum(1)
            if ref is not None:
                mask = identity_mask[rows] if identity_mask is not None and len(identity_mask) > 1 else identity_mask
                loss = loss + identity_weight * 0.5 * sqdist(img, ref[rows], mask)
        if prior_weight:
            loss = loss + prior_weight * prior_penalty(z)
        return loss, s.detach()

    def finished(s, rows):
        reached = torch.where(t[rows] == 1, s >= thresh[rows], s <= thresh[rows]).all(1)
        return reached | (strength.expand(len(z1), 1)[rows, 0] <= 0)

    z2, used = descend(z1, objective, steps, lr, finished)
    s1 = scores(G, E, z2, idx, bf16).to(dev)
    reached = torch.where(t == 1, s1 >= thresh - 1e-6, s1 <= thresh + 1e-6).all(1)
    return z2, {"s_before": s0.cpu(), "s_after": s1.cpu(), "reached": reached.cpu(), "steps": used}


def search_along(G, E, w1, goals, moves, holds=None, steps=STYLEGAN_DEFAULTS["search_steps"],
                 goal=STYLEGAN_DEFAULTS["search_goal"], hold=EditOptions.hold,
                 lr=STYLEGAN_DEFAULTS["search_lr"], max_distance=EditOptions.max_distance, resolution=None,
                 strength=1.0):
    """S32 along attribute directions (MobileStyleGAN): w2 = w1 + a @ moves + b @ holds.

    The patent's loss, summed over the edited attributes: 1/2 (t - s)^2 with s = sigmoid(E(G(w))), G
    drawing at `resolution` (None: E-Net's own) and E-Net reading it at its own, backpropagated to the
    input as in the patent's S32 but only into the coefficients a of `moves` (the edited attributes'
    directions, made orthogonal to the others', (k, dim)): E-Net decides how far (the size of a's
    gradient), its pooled direction which way (a only moves towards the target). The attributes E-Net
    judges but the edit does not name (in `E.attr_names` order) keep their score by 1/2 (l_o - l_o(w1))^2
    on E-Net's logits l (probabilities saturate: a smile pushed from 0.6 to 0.997 would cost nothing to
    keep, and Adam's momentum carried it there), backpropagated only into the coefficients b of `holds`
    (their own directions), so E-Net's correlations do not drag them along and the edit cannot use them.
    The hold is on or off (`hold`), not weighted: each coefficient gets one of the two losses' gradients
    only, and Adam's step is blind to a gradient's scale.
    Adam per face; a face stops once every edited s is past `goal` (1 - goal to remove); |a| is capped
    at `max_distance` so the search cannot leave the faces G-Net draws. a, b, `lr` and `max_distance` are
    in the length of the rows of `moves` and `holds` (`Directions.split`: the corpus's standard deviation).
    `goals`: list of (E-Net output index, target 0/1). `strength` scales w2 - w1 afterwards (0 = w1,
    1 = the goal, 2 = twice as far).
    w1: (N, dim) W or (N, rows, dim) W+ (the step is added to every row).
    -> w2 and info: s_before, s_after (N, A) of the edited attributes, reached (N,), steps (N,),
    coefficients (N, k), step (N, dim): the move at strength 1.
    """
    dev = w1.device
    idx, t = _goals(goals, None, len(w1))
    t = t.to(dev)
    held_idx = [i for i in range(len(E.attr_names)) if i not in idx]
    if holds is None or not held_idx or not hold:
        held_idx, holds = [], moves.new_zeros(0, moves.shape[1])
    basis = torch.cat([moves, holds]).to(dev, torch.float32)  # (k + m, dim)
    k = len(moves)

    def shifted(c, w):
        c = torch.cat([c[:, :k].clamp(-max_distance, max_distance), c[:, k:]], 1)
        step = c @ basis
        return w + (step[:, None] if w.ndim == 3 else step)

    def read(w):
        """E-Net's logits of G(w)."""
        img = G.synthesize(w, resolution or E.resolution)
        if img.shape[-1] != E.resolution:
            img = torch.nn.functional.interpolate(img, size=(E.resolution, E.resolution), mode="area")
        return E(img).float()

    with torch.no_grad():
        logits0 = read(w1)
    s0, held0 = torch.sigmoid(logits0[:, idx]), logits0[:, held_idx]
    c = torch.zeros(len(w1), len(basis), device=dev)
    adam, used, rows = RowAdam(c), torch.zeros(len(w1), dtype=torch.long), torch.arange(len(w1))
    for _ in range(steps):
        cr = c[rows].requires_grad_(True)
        logits = read(shifted(cr, w1[rows]))
        s = torch.sigmoid(logits[:, idx])
        keep = ~torch.where(t[rows] == 1, s >= goal, s <= 1 - goal).all(1).cpu()
        edit = (0.5 * (t[rows] - s).pow(2)).sum()
        (grad,) = torch.autograd.grad(edit, cr, retain_graph=bool(held_idx))
        # the size of each move's step from E-Net, its sign from the target: on a face at E-Net's ceiling the
        # gradient can point away from the boundary, and the search then went the wrong way (docs/EXPERIMENTS.md)
        grad = torch.cat([-(2 * t[rows] - 1) * grad[:, :k].abs(), torch.zeros_like(grad[:, k:])], 1)
        if held_idx:
            kept = (0.5 * (logits[:, held_idx] - held0[rows]).pow(2)).sum()
            grad[:, k:] = torch.autograd.grad(kept, cr)[0][:, k:]
        rows, grad = rows[keep], grad[keep.to(dev)]
        if not len(rows):
            break
        adam.step(c, grad, rows, lr)
        used[rows] += 1
    c[:, :k] = c[:, :k].clamp(-max_distance, max_distance)
    strength = torch.as_tensor(strength, dtype=torch.float32, device=dev).reshape(-1, 1)
    w2 = shifted(c * strength, w1)  # w1 + strength * step: any strength is a new decode, not a new search
    with torch.no_grad():
        s1 = torch.sigmoid(read(w2)[:, idx])
    reached = torch.where(t == 1, s1 >= goal - 1e-6, s1 <= 1 - goal + 1e-6).all(1)
    return w2.detach(), {"s_before": s0.cpu(), "s_after": s1.cpu(), "reached": reached.cpu(), "steps": used,
                         "coefficients": c[:, :k].detach().cpu(), "step": (c @ basis).detach()}
