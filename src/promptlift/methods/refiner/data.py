"""Coarse -> fine prompt pairs for the refiner (UF-FGTG, Hei et al. 2024, arXiv 2402.12760, section 3.1).

The paper summarised fine prompts into coarse ones of 1-5, 6-10 and 11-15 tokens. `coarsen` does that offline
by rule: a fine prompt is split into its comma-separated phrases and the leading phrases are kept while they fit
the bucket (the first phrase is cut to the bucket when it alone is longer), which keeps the subject and drops the
trailing style keywords. With a summarisation model id (`Summariser`) the same buckets are filled by the model.
"""

from __future__ import annotations

import re

__all__ = ["BUCKETS", "Summariser", "coarsen", "coarse_pairs"]

BUCKETS: tuple[tuple[int, int], ...] = ((1, 5), (6, 10), (11, 15))  # words, as the paper's token buckets

_PHRASE = re.compile(r"\s*[,;|.]\s*|\s+-\s+")


def coarsen(fine: str, bucket: tuple[int, int]) -> str:
    """The leading phrases of `fine` that fit `bucket` = (min, max) words; the first phrase is cut to max."""
    lo, hi = bucket
    phrases = [p.split() for p in _PHRASE.split(fine) if p.strip()]
    if not phrases:
        return ""
    kept = [phrases[0][:hi]]
    for words in phrases[1:]:
        total = sum(map(len, kept))
        if total >= lo and total + len(words) > hi:
            break
        kept.append(words[: hi - total])
        if sum(map(len, kept)) >= hi:
            break
    return ", ".join(" ".join(words) for words in kept if words)


class Summariser:
    """Coarse prompts written by a seq2seq summarisation model (a hub id or folder), bucket by bucket."""

    def __init__(self, model_name_or_path: str, device: str = "cpu"):
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model_name_or_path)
        self.model = AutoModelForSeq2SeqLM.from_pretrained(model_name_or_path).to(device).eval()

    def __call__(self, fine: list[str], bucket: tuple[int, int]) -> list[str]:
        import torch

        batch = self.tokenizer(fine, return_tensors="pt", padding=True, truncation=True).to(self.model.device)
        with torch.no_grad():
            out = self.model.generate(**batch, min_new_tokens=bucket[0], max_new_tokens=bucket[1], num_beams=2)
        return [t.strip() for t in self.tokenizer.batch_decode(out, skip_special_tokens=True)]


def coarse_pairs(fine: list[str], summariser: Summariser | None = None) -> list[tuple[str, str]]:
    """(coarse, fine) pairs: every fine prompt coarsened into each bucket (duplicates and no-ops dropped)."""
    pairs = []
    for bucket in BUCKETS:
        coarse = summariser(fine, bucket) if summariser is not None else [coarsen(f, bucket) for f in fine]
        pairs += [(c, f) for c, f in zip(coarse, fine) if c and c != f]
    return list(dict.fromkeys(pairs))
