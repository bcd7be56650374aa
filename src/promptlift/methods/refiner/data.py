"""Coarse -> fine prompt pairs for the refiner (UF-FGTG, Hei et al. 2024, arXiv 2402.12760, section 3.1).

The paper summarised fine prompts into coarse ones of 1-5, 6-10 and 11-15 tokens. `coarsen` does that offline
by rule: a fine prompt is split into its comma-separated phrases and the leading phrases are kept while they fit
the bucket (the first phrase is cut to the bucket when it alone is longer), which keeps the subject and drops the
trailing style keywords. With a summarisation model id (`Summariser`) the same buckets are filled by the model.

A refiner that extends the user's prompt (`extend_coarse`) learns what the fine prompt adds to the coarse one
(`continuation`), and, for keyword prompts whose phrase order carries little meaning, may read
them in a new order each time (`shuffle_phrases`), so a coarse prompt has many right continuations to choose from.
"""

from __future__ import annotations

import random
import re

__all__ = ["BUCKETS", "Summariser", "coarsen", "coarse_pairs", "continuation", "shuffle_phrases"]

BUCKETS: tuple[tuple[int, int], ...] = ((1, 5), (6, 10), (11, 15))  # words, as the paper's token buckets

_PHRASE = re.compile(r"\s*[,;|.]\s*|\s+-\s+")
_WORD = re.compile(r"\w+")
# words that say nothing of an image's content: a phrase sharing only these with the coarse prompt is new
_FUNCTION_WORDS = frozenset("a an the of in on at by with and or to for from into onto under over as is are its".split())


def _phrases(text: str) -> list[str]:
    return [p.strip() for p in _PHRASE.split(text) if p.strip()]


def _content_words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _FUNCTION_WORDS}


def continuation(coarse: str, fine: str) -> str:
    """What a refiner extending `coarse` adds to reach `fine`: the rest of `fine` when it starts with `coarse`'s words
    (as coarsened prompts do), else the phrases of `fine` that share no content word with `coarse`, in order.
    "a robot with long neon", "a robot with long neon braids, studio lighting" -> "braids, studio lighting";
    "two red boats at sunset", "two red boats, sunset, warm evening sky, soft lighting" -> "warm evening sky, soft
    lighting"."""
    said = _WORD.findall(coarse.lower())
    words = list(_WORD.finditer(fine))
    if said and [w.group().lower() for w in words[: len(said)]] == said:
        return fine[words[len(said) - 1].end():].strip(" ,;|.-\t\n")
    said = _content_words(coarse)
    return ", ".join(p for p in _phrases(fine) if not _content_words(p) & said)


def shuffle_phrases(text: str, rng: random.Random) -> str:
    """`text`'s comma-separated phrases in a random order."""
    phrases = _phrases(text)
    rng.shuffle(phrases)
    return ", ".join(phrases)


def coarsen(fine: str, bucket: tuple[int, int]) -> str:
    """The leading phrases of `fine` that fit `bucket` = (min, max) words; the first phrase is cut to max."""
    lo, hi = bucket
    phrases = [p.split() for p in _phrases(fine)]
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
