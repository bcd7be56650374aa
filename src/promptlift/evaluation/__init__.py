"""Evaluation: prompt sets, generate-and-score runs, pairwise win rates with intervals, reports."""

from .prompts import PROMPT_SETS, load_prompt_set, register_prompt_set

__all__ = ["PROMPT_SETS", "load_prompt_set", "register_prompt_set"]
