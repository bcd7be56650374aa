"""What a model declares about itself, and the defaults that follow from it.

A diffusers pipeline folder may hold `promptlift.json` beside its model_index.json (diffusers ignores it):

    {"guidance_scale": 5.0, "profile": "world", "embedded": true}

`guidance_scale` is the scale measured best for the model; `profile` names a registered `ModelProfile` (the prompts,
rewards and judges a command uses on the model when the user names none, and the judge that reads its images'
content); `embedded` marks the model a plug-in ships as the default, loaded when `--model` is left out. A model that
declares no profile (any Hub model) gets `DEFAULT_PROFILE`: the published rewards promptlift wraps.

Profiles and the embedded model come from plug-ins (the `promptlift.plugins` entry-point group, see
`registry.load_plugins`); the procedural world is one (docs/architecture.md, "Where the world sits"). Whether a model
is the embedded one is asked here alone: `is_embedded`.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .registry import check_registration, load_plugins

__all__ = ["DEFAULT_PROFILE", "MODEL_DEFAULTS_FILE", "PROFILES", "EmbeddedModel", "JudgeDefaults", "ModelProfile",
           "content_profile", "data_profile", "embedded_model", "heldout_prompts", "is_embedded", "judge_defaults",
           "model_declaration", "model_profile", "prompts_or_default", "recommended_guidance_scale", "refuse_content_options", "register_embedded_model",
           "register_profile"]

MODEL_DEFAULTS_FILE = "promptlift.json"
FALLBACK_GUIDANCE_SCALE = 7.5  # diffusers' default for Stable Diffusion


@dataclass(frozen=True)
class JudgeDefaults:
    """The prompts and judges commands use on a model when the user names none."""

    eval_prompts: str | None  # `promptlift eval --prompts`; None: the user must name them
    eval_rewards: tuple[str, ...]  # `promptlift eval --rewards`
    judge: str  # the win-rate judge of `compare`, the trainers' held-out check (never a training reward)
    heldout_prompts: str | None  # the trainers' held-out prompts; None: the user must name them
    aesthetic: str  # the aesthetic reward that scores, ranks and trains (curation, refine's previews)
    clip: str  # the image-text reward (curation's CLIP filter)
    train_rewards: tuple[str, ...]  # TextCraftor's rewards ("NAME:WEIGHT")


@dataclass(frozen=True)
class ModelProfile:
    """A kind of model a plug-in knows: its defaults and, where its images have a known content, the judge of it.

    `content_judge(judge_bundle)` -> a module whose `predict(images)` gives {attribute: [value per image]} for
    `attributes`; `judge_bundle` (a folder, or None: the plug-in's own) holds its weights. `accepts_judge_bundle(folder)`
    tells whether a folder holds such weights (`--judge_bundle` asks for this judge on another model).
    `heldout(name, n)` -> the first n records of a held-out prompt set the profile names (e.g. "literal"), or None for
    a name it does not know. `owns_data(folder)` tells whether a training folder is of this profile's images.
    """

    name: str
    help: str
    defaults: JudgeDefaults
    attributes: tuple[str, ...] = ()
    content_judge: Callable[[Path | None], Any] | None = None
    accepts_judge_bundle: Callable[[Path], bool] = field(default=lambda folder: False)
    heldout: Callable[[str, int], list[dict] | None] = field(default=lambda name, n: None)
    owns_data: Callable[[Path], bool] = field(default=lambda folder: False)


# The published rewards promptlift wraps; ImageReward judges, since TextCraftor trains on the other four by default
DEFAULT_PROFILE = ModelProfile(
    "default", "Any model that declares no profile: the published rewards.",
    JudgeDefaults(None, ("clip-score", "laion-aesthetic", "pickscore", "hpsv2", "imagereward"), "imagereward", None,
                  "laion-aesthetic", "clip-score",
                  ("clip-score:0.5", "laion-aesthetic:1", "pickscore:1", "hpsv2:1")))  # arXiv 2403.18978, Table 1

PROFILES: dict[str, ModelProfile] = {}


def register_profile(profile: ModelProfile) -> ModelProfile:
    """Register `profile` under its name (validated now)."""
    check_registration("model profile", PROFILES, profile.name, lambda: profile, profile.help)
    PROFILES[profile.name] = profile
    return profile


@dataclass(frozen=True)
class EmbeddedModel:
    """The default model a plug-in ships: its pipeline folder and the folder of its trained lifts (one subfolder per
    lift, by the lift's name)."""

    pipeline: Path
    lifts: Path


_EMBEDDED: list[EmbeddedModel] = []


def register_embedded_model(pipeline: Path, lifts: Path) -> None:
    """Make `pipeline` the model loaded when none is named (one plug-in may; a second is refused)."""
    if _EMBEDDED:
        raise ValueError(f"an embedded model is already registered ({_EMBEDDED[0].pipeline}); only one plug-in may "
                         f"ship the default model, not also {pipeline}.")
    _EMBEDDED.append(EmbeddedModel(Path(pipeline), Path(lifts)))


def embedded_model() -> EmbeddedModel | None:
    """The registered embedded model whose pipeline is installed, else None (`--model` must then be given)."""
    load_plugins()
    if _EMBEDDED and (_EMBEDDED[0].pipeline / "model_index.json").is_file():
        return _EMBEDDED[0]
    return None


def _folder(model) -> Path | None:
    """The local folder of a model given as None (the embedded one), a path, a hub id or a loaded pipeline."""
    if hasattr(model, "components"):  # a pipeline: where it was loaded from (None when it names no source)
        model = getattr(model, "name_or_path", None)
        if model is None:
            return None
    elif model is None:
        embedded = embedded_model()
        return embedded.pipeline if embedded is not None else None
    try:
        path = Path(str(model)).expanduser()
        return path if path.is_dir() else None
    except OSError:
        return None


def model_declaration(model) -> dict:
    """The model's promptlift.json ({} for a hub id, a single file, or a folder without one); read once per version
    of the file (every image's record asks it)."""
    folder = _folder(model)
    path = folder / MODEL_DEFAULTS_FILE if folder is not None else None
    if path is None or not path.is_file():
        return {}
    return dict(_read_declaration(str(path), path.stat().st_mtime_ns))


@functools.lru_cache(maxsize=64)
def _read_declaration(path: str, mtime_ns: int) -> dict:
    try:
        declared = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON ({e}); fix it or delete it (it only holds the model's defaults).") from None
    if not isinstance(declared, dict):
        raise ValueError(f"{path} must hold a JSON object such as {{\"guidance_scale\": 7.5}}.")
    return declared


def is_embedded(model) -> bool:
    """True for None (the default, when a plug-in ships one), or a folder or pipeline whose files declare
    `"embedded": true`."""
    return bool(model_declaration(model).get("embedded", False))


def model_profile(model) -> ModelProfile:
    """The profile the model declares, else DEFAULT_PROFILE."""
    name = model_declaration(model).get("profile")
    if name is None:
        return DEFAULT_PROFILE
    load_plugins()
    if name not in PROFILES:
        raise ValueError(f"the model {str(model)!r} declares the profile {name!r} in its {MODEL_DEFAULTS_FILE}, which no "
                         f"installed plug-in registers (known: {', '.join(sorted(PROFILES)) or 'none'}); install the "
                         "plug-in, or remove \"profile\" from that file.")
    return PROFILES[name]


def recommended_guidance_scale(model) -> float:
    """The guidance scale a model's promptlift.json recommends (the embedded model records the scale measured best for
    it), else diffusers' 7.5."""
    return float(model_declaration(model).get("guidance_scale", FALLBACK_GUIDANCE_SCALE))


def judge_defaults(model) -> JudgeDefaults:
    """The defaults of the model's profile."""
    return model_profile(model).defaults


def content_profile(model, judge_bundle: str | Path | None = None) -> ModelProfile | None:
    """The profile whose content judge reads this model's images: the model's own, or the one whose judge weights
    `judge_bundle` holds (asked for by name on another model); None when neither has one."""
    profile = model_profile(model)
    if judge_bundle is None:
        return profile if profile.content_judge is not None else None
    load_plugins()
    for candidate in (profile, *PROFILES.values()):
        if candidate.content_judge is not None and candidate.accepts_judge_bundle(Path(judge_bundle)):
            return candidate
    raise ValueError(f"`judge_bundle` {str(judge_bundle)!r} holds no content judge any installed plug-in reads; pass "
                     "the folder of a bundle with trained judges (judges/attributes in it).")


def data_profile(folder: str | Path | None) -> ModelProfile:
    """The profile whose images a training folder holds (a plug-in's own renders), else DEFAULT_PROFILE."""
    if folder is not None and Path(str(folder)).is_dir():
        load_plugins()
        for profile in PROFILES.values():
            if profile.owns_data(Path(str(folder))):
                return profile
    return DEFAULT_PROFILE


def heldout_prompts(name: str, n: int) -> list[dict] | None:
    """The first `n` records of a held-out prompt set a profile names, or None when none does."""
    load_plugins()
    for profile in PROFILES.values():
        records = profile.heldout(name, n)
        if records is not None:
            return records
    return None


def prompts_or_default(given: str | None, default: str | None, model, option: str, hint: str) -> str:
    """The prompts named by `--option`, else the model's default set; on a model with none (any whose profile names
    none) the user must name them: refused with `hint` (what to pass)."""
    if given is not None:
        return given
    if default is None:
        raise ValueError(f"no `{option}` given, and {str(model)!r} declares no prompts of its own (only a plug-in's model, "
                         f"such as the embedded one, does): pass --{option} FILE (.txt or .jsonl){hint}.")
    return default


def refuse_content_options(model, judge_bundle: str | Path | None = None, **given) -> None:
    """Options that only a content judge reads, refused by name on a model that has none unless one is asked for by
    name (`judge_bundle`)."""
    if content_profile(model, judge_bundle) is not None:
        return
    for name, value in given.items():
        if value is not None:
            raise ValueError(f"`{name}` reads a content judge (the world's attribute judge, for the embedded model's "
                             f"renders), and {str(model)!r} has none: drop --{name}, or ask for that judge by name with "
                             "--judge_bundle.")
