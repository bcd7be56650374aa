"""The world's judges as rewards, loaded from the embedded bundle (or another bundle folder).

`world-aesthetic-reward` is for training and curation; `world-aesthetic` (another design and seed) is
for evaluation only, so a method that games the reward shows it there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F

from ..rewards.base import Reward, WeightSource, register_reward
from ..world.prompts import parse_prompt
from ..world.scene import ATTRIBUTES
from .bundle import BUNDLE_DIR, load_judge, load_tokenizer_from
from .clip import image_features, load_world_clip, text_features

__all__ = ["WorldAesthetic", "WorldAttributes", "WorldCLIPScore"]


def _bundle_sources(what: str, *subpaths: str):
    def sources(bundle_dir: str = str(BUNDLE_DIR), **_) -> list[WeightSource]:
        return [WeightSource(what, str(Path(bundle_dir) / p), "train it with `promptlift world train-bundle`.")
                for p in subpaths]

    return sources


class WorldAesthetic(Reward):
    """A world aesthetic predictor: the predicted ground-truth aesthetic score (1-10)."""

    def __init__(self, predictor: torch.nn.Module):
        super().__init__()
        self.predictor = predictor

    def forward(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        self.check_inputs(images, prompts)
        return self.predictor(images)  # (B,)


class WorldAttributes(Reward):
    """Mean probability the attribute judge gives to the attributes each prompt names (parsed by the world).

    Attributes a prompt leaves open are not scored; a prompt that names none scores 0.
    """

    score_range = (0.0, 1.0)

    def __init__(self, judge: torch.nn.Module):
        super().__init__()
        self.judge = judge

    def forward(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        self.check_inputs(images, prompts)
        probs = {name: F.softmax(logits, -1) for name, logits in self.judge(images).items()}
        scores = []
        for i, prompt in enumerate(prompts):
            named = {k: v for k, v in parse_prompt(prompt).items() if v is not None}
            terms = [probs[k][i, ATTRIBUTES[k].index(v)] for k, v in named.items()]
            scores.append(torch.stack(terms).mean() if terms else probs["setting"][i].sum() * 0)
        return torch.stack(scores)  # (B,)


class WorldCLIPScore(Reward):
    """100 x cosine(image, prompt) under the world CLIP."""

    score_range = (-100.0, 100.0)

    def __init__(self, model, tokenizer):
        super().__init__()
        self.model, self.tokenizer = model, tokenizer

    def text_features(self, prompts: Sequence[str]) -> torch.Tensor:
        """Normalised text features (B, P)."""
        device = next(self.model.parameters()).device
        tokens = self.tokenizer(list(prompts), padding=True, truncation=True, return_tensors="pt").to(device)
        return F.normalize(text_features(self.model, **tokens), dim=-1)

    def forward(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        self.check_inputs(images, prompts)
        img = F.normalize(image_features(self.model, images), dim=-1)
        return 100.0 * (img * self.text_features(prompts)).sum(-1)  # (B,)


@register_reward("world-aesthetic", help="World aesthetic predictor B (evaluation only).", eval_only=True,
                 sources=_bundle_sources("aesthetic predictor", "judges/aesthetic/config.json"))
def _world_aesthetic(bundle_dir: str = str(BUNDLE_DIR)) -> WorldAesthetic:
    return WorldAesthetic(load_judge(bundle_dir, "aesthetic"))


@register_reward("world-aesthetic-reward", help="World aesthetic predictor A (for training and curation).",
                 sources=_bundle_sources("aesthetic predictor", "judges/aesthetic-reward/config.json"))
def _world_aesthetic_reward(bundle_dir: str = str(BUNDLE_DIR)) -> WorldAesthetic:
    return WorldAesthetic(load_judge(bundle_dir, "aesthetic-reward"))


@register_reward("world-attributes", help="Attribute judge's probability of the attributes the prompt names.",
                 sources=_bundle_sources("attribute judge", "judges/attributes/config.json"))
def _world_attributes(bundle_dir: str = str(BUNDLE_DIR)) -> WorldAttributes:
    return WorldAttributes(load_judge(bundle_dir, "attributes"))


@register_reward("world-clip", help="100 x cosine(image, prompt) under the world CLIP.",
                 sources=_bundle_sources("world CLIP", "clip/config.json", "pipeline/text_encoder/config.json",
                                         "pipeline/tokenizer"))
def _world_clip(bundle_dir: str = str(BUNDLE_DIR)) -> WorldCLIPScore:
    return WorldCLIPScore(load_world_clip(bundle_dir), load_tokenizer_from(bundle_dir))
