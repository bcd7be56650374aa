"""The world and its judges as a promptlift plug-in (entry-point group `promptlift.plugins`, pyproject.toml): importing this module
registers the world's prompt sets, its judges as rewards, the "world" model profile and the embedded model.

Nothing below the world imports it; the registries load it the first time they are read (`registry.load_plugins`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..data.prompt_sets import register_prompt_set
from ..profiles import JudgeDefaults, ModelProfile, register_embedded_model, register_profile
from ..world.config import WORLD_PROMPT_STYLES
from ..world.dataset import iter_prompt_set
from ..world.scene import ATTRIBUTES
from . import following, rewards  # noqa: F401  (register the world's judges as rewards)
from .bundle import BUNDLE_DIR, load_judge

__all__ = ["EMBEDDED_DECLARATION", "WORLD", "WORLD_PROFILE", "is_world_data"]

# What the embedded model's pipeline/promptlift.json declares (`promptlift world train-bundle --parts measure`
# writes it): the world's profile, and that it is the embedded model
EMBEDDED_DECLARATION = {"profile": "world", "embedded": True}
WORLD = JudgeDefaults(
    eval_prompts="world-narrative-val", eval_rewards=("world-aesthetic", "world-clip"), judge="world-aesthetic",
    heldout_prompts="literal", aesthetic="world-aesthetic-reward", clip="world-clip",
    train_rewards=("world-aesthetic-reward:1", "world-clip:0.5"))  # bundle/textcraftor/recipe.yaml


def is_world_data(folder: Path) -> bool:
    """True for a folder of world renders (its metadata.jsonl rows carry the world's scene attributes)."""
    meta = Path(folder) / "metadata.jsonl"
    if not meta.is_file():
        return False
    with open(meta, encoding="utf-8") as f:
        first = f.readline()
    try:
        row = json.loads(first)
    except json.JSONDecodeError:
        return False
    return isinstance(row, dict) and {"setting", "kind", "color", "count", "scene_seed"} <= set(row)


def _heldout(name: str, n: int) -> list[dict] | None:
    """A world prompt set's first `n` prompts of seed 3 (apart from the eval runs' seed 0), for the trainers' check."""
    return list(iter_prompt_set(name, n, seed=3)) if name in WORLD_PROMPT_STYLES else None


WORLD_PROFILE = register_profile(ModelProfile(
    "world", "The embedded model: trained on the procedural world, judged by the world's judges.", WORLD,
    attributes=tuple(ATTRIBUTES),
    content_judge=lambda judge_bundle: load_judge(judge_bundle or BUNDLE_DIR, "attributes"),
    accepts_judge_bundle=lambda folder: (folder / "judges" / "attributes" / "config.json").is_file(),
    heldout=_heldout, owns_data=is_world_data))
register_embedded_model(BUNDLE_DIR / "pipeline", lifts=BUNDLE_DIR)


def _world_set(name: str):
    def loader(_text, subset, num_prompts: int = 1000) -> list[dict]:
        """Seed 0 (the report scenes), or the seed a subset "seed-N" names (seed-3: the scenes the trainers' check
        and every choice of options use)."""
        match = re.fullmatch(r"seed-(\d+)", subset or "seed-0")
        if match is None:
            raise ValueError(f"prompt set world-{name}: subset {subset!r} must be seed-N (seed-0: the report scenes, "
                             "seed-3: the selection scenes).")
        return [{"id": str(i), "prompt": x["prompt"], "expected": x["expected"], "category": x["style"]}
                for i, x in enumerate(iter_prompt_set(name, num_prompts, seed=int(match.group(1))))]

    return loader


for _name in WORLD_PROMPT_STYLES:
    register_prompt_set(f"world-{_name}", help=f"The world's {_name} prompt set (held-out scenes, with expected "
                        "attributes; --prompts_subset seed-N draws other scenes).", builtin=True)(_world_set(_name))
