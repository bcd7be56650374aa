"""Which prompts and judges a command uses when the user names none: the world's only for the embedded model (they
were trained on its 64-px renders), the published rewards promptlift wraps for any other."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..judges.bundle import is_embedded_source

__all__ = ["REAL", "WORLD", "JudgeDefaults", "is_world_data", "judge_defaults", "prompts_or_default", "refuse_world_options"]


@dataclass(frozen=True)
class JudgeDefaults:
    """The defaults of one kind of model."""

    eval_prompts: str | None  # `promptlift eval --prompts`; None: the user must name them
    eval_rewards: tuple[str, ...]  # `promptlift eval --rewards`
    judge: str  # the win-rate judge of `compare`, the trainers' held-out check (never a training reward)
    heldout_prompts: str | None  # the trainers' held-out prompts; None: the user must name them
    aesthetic: str  # the aesthetic reward that scores, ranks and trains (curation, refine's previews)
    clip: str  # the image-text reward (curation's CLIP filter)


WORLD = JudgeDefaults("world-narrative-val", ("world-aesthetic", "world-clip"), "world-aesthetic", "literal",
                      "world-aesthetic-reward", "world-clip")
# The published rewards promptlift wraps; ImageReward judges, since TextCraftor trains on the other four by default
REAL = JudgeDefaults(None, ("clip-score", "laion-aesthetic", "pickscore", "hpsv2", "imagereward"), "imagereward", None,
                     "laion-aesthetic", "clip-score")


def judge_defaults(model: str | Path | None) -> JudgeDefaults:
    """WORLD for the embedded model (None or its folder), REAL for any other."""
    return WORLD if is_embedded_source(model) else REAL


def prompts_or_default(given: str | None, default: str | None, model, option: str, hint: str) -> str:
    """The prompts named by `--option`, else the model's default set; on a model with none (any but the embedded one)
    the user must name them: refused with `hint` (what to pass)."""
    if given is not None:
        return given
    if default is None:
        raise ValueError(f"no `{option}` given, and the world's prompt sets are for the embedded model, not {model!r}: "
                         f"pass --{option} FILE (.txt or .jsonl){hint}.")
    return default


def is_world_data(source: str | Path | None) -> bool:
    """True for a folder of world renders (its metadata.jsonl rows carry the world's scene attributes)."""
    meta = Path(str(source)) / "metadata.jsonl" if source is not None else None
    if meta is None or not meta.is_file():
        return False
    with open(meta, encoding="utf-8") as f:
        first = f.readline()
    try:
        row = json.loads(first)
    except json.JSONDecodeError:
        return False
    return isinstance(row, dict) and {"setting", "kind", "color", "count", "scene_seed"} <= set(row)


def refuse_world_options(model: str | Path | None, judge_bundle: str | Path | None = None, **given) -> None:
    """Options that only the world's attribute judge reads, refused by name on any model but the embedded one unless
    that judge is asked for by name (`judge_bundle`)."""
    if is_embedded_source(model) or judge_bundle is not None:
        return
    for name, value in given.items():
        if value is not None:
            raise ValueError(f"`{name}` reads the world's attribute judge, which is for the embedded model's renders, "
                             f"and {str(model)!r} is another model: drop --{name}, or ask for that judge by name with "
                             "--judge_bundle.")
