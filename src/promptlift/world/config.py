"""Configs of the `promptlift world ...` commands (documented once, here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = ["ContactSheetConfig", "DatasetConfig", "PromptSetConfig", "RenderConfig", "StatsConfig", "WORLD_PROMPT_STYLES"]

# The world's prompt sets: set name -> prompt style (narrative sets name their phrasing pool).
WORLD_PROMPT_STYLES = {"complex": "complex", "literal": "literal", "narrative-train": "narrative", "narrative-val": "narrative",
                       "mixed-train": "mixed", "mixed-val": "mixed"}


def _check_positive(cfg, *names: str) -> None:
    for name in names:
        if getattr(cfg, name) < 1:
            raise ValueError(f"`{name}` must be >= 1, got {getattr(cfg, name)}.")


def _check_size(size: int) -> None:
    if size < 32 or size % 8:
        raise ValueError(f"`size` must be a multiple of 8 and >= 32, got {size}.")


@dataclass
class RenderConfig:
    """Render world scenes to PNGs, each with a JSON of its scene and its three prompts."""

    num_scenes: int = field(default=4, metadata={"help": "How many scenes."})
    seed: int = field(default=0, metadata={"help": "Base seed; scene i is drawn from (seed, i)."})
    size: int = field(default=64, metadata={"help": "Image side in pixels (multiple of 8, >= 32)."})
    output_dir: Path = field(default=Path("outputs/world"), metadata={"help": "Folder for the PNG and JSON files."})

    def __post_init__(self):
        _check_positive(self, "num_scenes")
        _check_size(self.size)


@dataclass
class DatasetConfig:
    """Build a world dataset: an imagefolder with metadata.jsonl (file_name, prompts, attributes, quality, score)."""

    num_scenes: int = field(default=10_000, metadata={"help": "How many scenes (images)."})
    seed: int = field(default=0, metadata={"help": "Base seed; scene i is drawn from (seed, i)."})
    size: int = field(default=64, metadata={"help": "Image side in pixels (multiple of 8, >= 32)."})
    output_dir: Path = field(default=Path("data/world"), metadata={"help": "Dataset folder (written atomically)."})
    narrative_pool: Literal["train", "val"] = field(
        default="train", metadata={"help": "Phrasing pool of the `narrative` column."}
    )
    shard_size: int = field(default=10_000, metadata={"help": "Images per subfolder of images/."})
    num_workers: int = field(default=0, metadata={"help": "Rendering processes; 0 = one per CPU core."})
    overwrite: bool = field(default=False, metadata={"help": "Replace an existing dataset at output_dir."})

    def __post_init__(self):
        _check_positive(self, "num_scenes", "shard_size")
        _check_size(self.size)
        if self.num_workers < 0:
            raise ValueError(f"`num_workers` must be >= 0, got {self.num_workers}.")


@dataclass
class PromptSetConfig:
    """Write a named world prompt set as JSONL lines {"prompt", "expected": {setting, kind, color, count}}."""

    name: Literal["complex", "literal", "narrative-train", "narrative-val"] = field(
        default="narrative-val", metadata={"help": "Which set: the prompt style (and narrative phrasing pool)."}
    )
    num_prompts: int = field(default=200, metadata={"help": "How many prompts."})
    seed: int = field(default=0, metadata={"help": "Base seed (prompt sets draw from a stream apart from datasets)."})
    output: Path | None = field(default=None, metadata={"help": "JSONL file to write; default: print to stdout."})

    def __post_init__(self):
        _check_positive(self, "num_prompts")


@dataclass
class ContactSheetConfig:
    """Render N scenes sorted by aesthetic score, each beside its score and three prompts, as one PNG."""

    num_scenes: int = field(default=12, metadata={"help": "How many scenes (rows)."})
    seed: int = field(default=0, metadata={"help": "Base seed."})
    size: int = field(default=64, metadata={"help": "Render size in pixels."})
    scale: int = field(default=2, metadata={"help": "Upscaling of each render on the sheet."})
    output: Path = field(default=Path("outputs/world_contact_sheet.png"), metadata={"help": "PNG file to write."})

    def __post_init__(self):
        _check_positive(self, "num_scenes", "scale")
        _check_size(self.size)


@dataclass
class StatsConfig:
    """Measure the world: score distribution, narrative indirection per pool, and pool disjointness."""

    num_scenes: int = field(default=20_000, metadata={"help": "Scenes to sample."})
    seed: int = field(default=0, metadata={"help": "Base seed."})

    def __post_init__(self):
        _check_positive(self, "num_scenes")
