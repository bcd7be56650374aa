"""The token budget every refined prompt keeps: the pipeline's text encoder reads `model_max_length` tokens (77 for
CLIP), start and end tokens included; a refiner writes no more than that, whatever its own tokenizer counts."""

from __future__ import annotations

__all__ = ["budget_left", "fit_budget"]


def budget_left(tokenizer, text: str) -> int:
    """Tokens still free in `tokenizer`'s encoder after `text` (start and end tokens counted)."""
    used = len(tokenizer(text, add_special_tokens=True, truncation=False).input_ids) if text else 2
    return tokenizer.model_max_length - used


def fit_budget(tokenizer, text: str, kept: str = "") -> str:
    """`text` cut, word by word from its end, until it fits the budget (never into `kept`, the user's own words)."""
    while budget_left(tokenizer, text) < 0 and len(text) > len(kept):
        text = text.rsplit(" ", 1)[0] if " " in text else ""
    return text
