"""How well E-Net judges an attribute (patent S23, made measurable): accuracy, balanced accuracy,
ROC AUC, expected calibration error and the reliability-diagram bins, per attribute.

Labels are {0, 1}; `probs` are E-Net's P(attribute) = sigmoid(logit). Calibration is that of
P(attribute) itself (the score s that S32 pushes to 0 or 1): in each equal-width bin of p, the
gap between the mean p and the share of faces that have the attribute. Undefined values (AUC or
balanced accuracy with one class absent, ECE of nothing) are NaN, written as null in JSON.
"""

import math

import numpy as np
from scipy.stats import rankdata


def _arrays(labels, probs):
    y = np.asarray(labels, np.float64).ravel()
    p = np.asarray(probs, np.float64).ravel()
    if y.shape != p.shape:
        raise ValueError(f"{y.size} labels but {p.size} scores")
    return y > 0.5, p


def accuracy(labels, probs, threshold: float = 0.5) -> float:
    y, p = _arrays(labels, probs)
    return float(np.mean((p >= threshold) == y)) if y.size else math.nan


def balanced_accuracy(labels, probs, threshold: float = 0.5) -> float:
    """Mean of the true-positive and true-negative rates (NaN unless both classes occur)."""
    y, p = _arrays(labels, probs)
    pred = p >= threshold
    if y.all() or not y.any():
        return math.nan
    return float((pred[y].mean() + (~pred[~y]).mean()) / 2)


def roc_auc(labels, scores) -> float:
    """P(score of a random positive > score of a random negative), ties counting 1/2 (Mann-Whitney U)."""
    y, s = _arrays(labels, scores)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if not n_pos or not n_neg:
        return math.nan
    ranks = rankdata(s)  # average ranks of ties
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def reliability_bins(labels, probs, n_bins: int = 10) -> dict:
    """Equal-width bins of p on [0, 1] (the last one closed): edges, count, mean p, share positive."""
    y, p = _arrays(labels, probs)
    edges = np.linspace(0, 1, n_bins + 1)
    which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, n_bins - 1)
    count = np.bincount(which, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(which, p, n_bins) / count
        frac_pos = np.bincount(which, y.astype(np.float64), n_bins) / count
    return {"edges": edges.tolist(), "count": count.tolist(),
            "mean_p": mean_p.tolist(), "frac_positive": frac_pos.tolist()}


def expected_calibration_error(labels, probs, n_bins: int = 10) -> float:
    """sum over bins of (share of faces in the bin) x |mean p - share positive|."""
    b = reliability_bins(labels, probs, n_bins)
    count = np.asarray(b["count"], np.float64)
    if not count.sum():
        return math.nan
    gap = np.abs(np.nan_to_num(np.asarray(b["mean_p"]) - np.asarray(b["frac_positive"])))
    return float((count * gap).sum() / count.sum())


def binary_report(labels, probs, n_bins: int = 10) -> dict:
    y, p = _arrays(labels, probs)
    pc = np.clip(p, 1e-7, 1 - 1e-7)
    return {
        "n": int(y.size), "positive_rate": float(y.mean()) if y.size else math.nan,
        "bce": float(-np.mean(np.where(y, np.log(pc), np.log1p(-pc)))) if y.size else math.nan,
        "accuracy": accuracy(y, p), "balanced_accuracy": balanced_accuracy(y, p), "roc_auc": roc_auc(y, p),
        "ece": expected_calibration_error(y, p, n_bins), "reliability": reliability_bins(y, p, n_bins),
    }


def report(labels, probs, attr_names, n_bins: int = 10) -> dict:
    """labels, probs (N, A) -> {attribute: binary_report}."""
    labels, probs = np.asarray(labels).reshape(-1, len(attr_names)), np.asarray(probs).reshape(-1, len(attr_names))
    return {a: binary_report(labels[:, i], probs[:, i], n_bins) for i, a in enumerate(attr_names)}


def json_safe(obj):
    """NaN -> None, recursively, so json.dumps writes standard JSON (null)."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, float) and math.isnan(obj):
        return None
    return obj
