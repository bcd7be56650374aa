"""Data: streaming (image, caption, metadata) records, prompt files and prompt sets (the world's and public
benchmarks'), reviews, and Emu's curation funnel."""

from .prompt_sets import PROMPT_SETS, load_prompt_set, prompt_set_specs, register_prompt_set
from .records import Record, iter_records

__all__ = ["PROMPT_SETS", "Record", "iter_records", "load_prompt_set", "prompt_set_specs", "register_prompt_set"]
