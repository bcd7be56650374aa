"""The reward protocol, its registry, and the check that every weight a run needs is there before it starts.

A reward is a callable module: ``reward(images, prompts) -> Tensor  # (B,)`` with images (B, 3, H, W)
in [0, 1]. Where the underlying model allows it the score is differentiable in the images, so
TextCraftor can back-propagate through it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from ..registry import check_registration, load_plugins, parse_named_options

__all__ = [
    "REWARDS",
    "MissingWeightsError",
    "Reward",
    "RewardSpec",
    "WeightSource",
    "check_rewards",
    "clip_preprocess",
    "load_reward",
    "parse_reward_options",
    "register_reward",
    "reward_spec",
    "reward_specs",
]


class Reward(torch.nn.Module):
    """Base class: `forward(images (B, 3, H, W) in [0, 1], prompts: list[str]) -> (B,)`.

    Rewards hold frozen models: every parameter has requires_grad False, so gradients reach the images
    (and what produced them) but never pile up in the reward model.
    """

    differentiable: bool = True
    score_range: tuple[float, float] = (float("-inf"), float("inf"))  # bounds every score lies within
    judged_with: str | None = None  # a judge's models and rules, as its reports name them (None: its name says it)
    last_details: list[dict] | None = None  # per image of the last batch, what its score is made of (JSON)

    def freeze(self) -> Reward:
        self.requires_grad_(False)
        return self.eval()

    def hold(self, *parts) -> None:
        """Hold the torch models behind plug objects (a detector's or VQA model's `model`), frozen, so that
        `reward.to(device)` moves them with the reward."""
        modules = [m for part in parts for m in (part, getattr(part, "model", None)) if isinstance(m, torch.nn.Module)]
        self.held = torch.nn.ModuleList(modules).requires_grad_(False).eval()

    @staticmethod
    def check_inputs(images: torch.Tensor, prompts: Sequence[str]) -> None:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"`images` must be (B, 3, H, W) in [0, 1], got shape {tuple(images.shape)}.")
        if len(prompts) != images.shape[0]:
            raise ValueError(f"got {images.shape[0]} images but {len(prompts)} prompts; give one prompt per image.")


@dataclass(frozen=True)
class WeightSource:
    """A file or hub id a reward needs, and where a user gets it."""

    what: str
    location: str  # local path or hub id
    where_to_get: str
    filename: str = "config.json"  # the file of a hub repo that must be in the cache when offline

    def is_available(self) -> bool:
        if Path(self.location).expanduser().exists():
            return True
        if not re.match(r"^[\w.-]+/[\w.-]+$", self.location):
            return False
        from huggingface_hub import constants, try_to_load_from_cache

        if not constants.HF_HUB_OFFLINE and not os.environ.get("HF_HUB_OFFLINE"):
            return True  # online: from_pretrained will download it
        return isinstance(try_to_load_from_cache(self.location, self.filename), str)


@dataclass(frozen=True)
class RewardSpec:
    """A registered reward: its factory, its help line, the weights it needs, and its optional package."""

    name: str
    factory: Callable[..., Reward]
    help: str
    sources: Callable[..., list[WeightSource]] = field(default=lambda **kw: [])
    requires: str | None = None  # import name of an optional dependency
    install: str | None = None  # how to install it
    eval_only: bool = False  # kept out of training, so that reward hacking shows in evaluation


REWARDS: dict[str, RewardSpec] = {}


def register_reward(name: str, *, help: str, sources=None, requires: str | None = None, install: str | None = None,
                    eval_only: bool = False):
    """Register a reward factory `(**options) -> Reward`; the name, help and factory are validated now."""

    def decorator(factory):
        check_registration("reward", REWARDS, name, factory, help)
        if (requires is None) != (install is None):
            raise ValueError(f"reward {name!r}: give both `requires` and `install`, or neither.")
        REWARDS[name] = RewardSpec(name, factory, help, sources or (lambda **kw: []), requires, install, eval_only)
        return factory

    return decorator


class MissingWeightsError(FileNotFoundError):
    """Every missing weight file, hub id or package of the requested rewards, listed at once."""


def reward_specs() -> list[RewardSpec]:
    """Every registered reward, plug-ins' included."""
    load_plugins()
    return list(REWARDS.values())


def reward_spec(name: str) -> RewardSpec:
    """The registered reward `name` (a plug-in's included), refused by name when unknown."""
    load_plugins()  # plug-ins register their rewards (the world's judges)
    if name not in REWARDS:
        raise ValueError(f"unknown reward {name!r}; registered rewards: {', '.join(sorted(REWARDS))}.")
    return REWARDS[name]


def check_rewards(names: Sequence[str], options: dict[str, dict] | None = None) -> None:
    """Raise MissingWeightsError listing everything the rewards `names` lack, before any generation starts."""
    import importlib.util

    options = options or {}
    missing = []
    for name in names:
        spec = reward_spec(name)
        if spec.requires and importlib.util.find_spec(spec.requires) is None:
            missing.append(f"- {name}: the package `{spec.requires}` is not installed: {spec.install}")
            continue
        for src in spec.sources(**options.get(name, {})):
            if not src.is_available():
                missing.append(f"- {name}: {src.what} not found at {src.location!r}; {src.where_to_get}")
    if missing:
        raise MissingWeightsError("rewards cannot start; missing:\n" + "\n".join(missing))


def load_reward(name: str, device: str | torch.device | None = None, **options) -> Reward:
    """Build a registered reward (frozen) after checking its weights."""
    check_rewards([name], {name: options})
    reward = reward_spec(name).factory(**options).freeze()
    return reward.to(device) if device is not None else reward


def parse_reward_options(options: Sequence[str]) -> dict[str, dict]:
    """{reward: {key: value}} from "REWARD.KEY=VALUE" strings; "true"/"false" become booleans."""
    return parse_named_options(options, "reward option", "pickscore.paper_protocol=true")


def clip_preprocess(images: torch.Tensor, size: int, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """CLIP's resize (shortest side, bicubic) + centre crop + normalise, in torch so gradients flow."""
    h, w = images.shape[-2:]
    scale = size / min(h, w)
    if (h, w) != (size, size):
        images = F.interpolate(images.float(), size=(max(size, round(h * scale)), max(size, round(w * scale))),
                               mode="bicubic", align_corners=False, antialias=True)
        top, left = (images.shape[-2] - size) // 2, (images.shape[-1] - size) // 2
        images = images[..., top : top + size, left : left + size]
    mean_t = torch.tensor(mean, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images - mean_t) / std_t
