"""Means and win rates with bootstrap 95 % intervals (resampling prompts, so seeds of a prompt move together)."""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import numpy as np

__all__ = ["bootstrap_mean", "win_rate"]


def _clusters(values: Sequence[float], groups: Sequence[str] | None) -> list[np.ndarray]:
    if groups is None:
        return [np.array([v]) for v in values]
    by_group: dict[str, list[float]] = defaultdict(list)
    for v, g in zip(values, groups):
        by_group[g].append(v)
    return [np.array(v) for v in by_group.values()]


def _bootstrap_means(clusters: list[np.ndarray], num_samples: int, seed: int) -> np.ndarray:
    """(num_samples,) means of resamples of whole clusters."""
    rng = np.random.default_rng(seed)
    sums = np.array([c.sum() for c in clusters])
    counts = np.array([len(c) for c in clusters])
    idx = rng.integers(0, len(clusters), size=(num_samples, len(clusters)))
    return sums[idx].sum(1) / counts[idx].sum(1)


def bootstrap_mean(values: Sequence[float], groups: Sequence[str] | None = None, num_samples: int = 2000,
                   seed: int = 0, return_draws: bool = False) -> dict:
    """{"mean", "ci95": [lo, hi], "n"} of `values`; with `groups` (e.g. prompt ids) the bootstrap resamples groups.
    `return_draws`: also "draws", the bootstrap means (to combine independent samples, e.g. a benchmark's
    categories, into one interval)."""
    if len(values) == 0:
        raise ValueError("no values to summarise.")
    means = _bootstrap_means(_clusters([float(v) for v in values], groups), num_samples, seed)
    lo, hi = np.percentile(means, [2.5, 97.5])
    out = {"mean": float(np.mean(values)), "ci95": [float(lo), float(hi)], "n": len(values)}
    return {**out, "draws": means} if return_draws else out


def win_rate(a: Sequence[float], b: Sequence[float], groups: Sequence[str] | None = None, tie_tolerance: float = 0.0,
             num_samples: int = 2000, seed: int = 0) -> dict:
    """P(A > B) + 1/2 P(tie) over paired scores, with a bootstrap 95 % interval and the tie count."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(f"win_rate needs two equal-length, non-empty score lists; got {a.shape} and {b.shape}.")
    ties = np.abs(a - b) <= tie_tolerance
    outcome = np.where(ties, 0.5, (a > b).astype(float))  # 1 win, 0.5 tie, 0 loss
    summary = bootstrap_mean(outcome, groups, num_samples, seed)
    return {"win_rate": summary["mean"], "ci95": summary["ci95"], "n": len(a), "ties": int(ties.sum())}
