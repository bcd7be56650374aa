"""Diversity of a prompt's alternative refinements: distinct-n (Li et al. 2016, arXiv 1510.03055) and the mean
pairwise cosine distance of their sentence embeddings."""

from __future__ import annotations

from itertools import combinations
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

__all__ = ["distinct_n", "pairwise_distance"]


def distinct_n(groups: Sequence[Sequence[str]], n: int) -> float:
    """Mean over groups of (distinct word n-grams / all word n-grams) among a group's texts."""
    if n < 1:
        raise ValueError(f"`n` must be >= 1, got {n}.")
    scores = []
    for texts in groups:
        grams = [tuple(words[i : i + n]) for words in (t.replace(",", " ").split() for t in texts)
                 for i in range(len(words) - n + 1)]
        if grams:
            scores.append(len(set(grams)) / len(grams))
    return sum(scores) / len(scores) if scores else 0.0


def pairwise_distance(groups: Sequence[Sequence[str]], embed: Callable[[list[str]], torch.Tensor]) -> float:
    """Mean over groups of the mean pairwise cosine distance (1 - cos) of `embed(texts)` (N, D)."""
    scores = []
    for texts in groups:
        if len(texts) < 2:
            continue
        e = F.normalize(embed(list(texts)).float(), dim=-1)
        scores.append(sum(float(1 - e[i] @ e[j]) for i, j in combinations(range(len(e)), 2))
                      / (len(e) * (len(e) - 1) / 2))
    return sum(scores) / len(scores) if scores else 0.0
