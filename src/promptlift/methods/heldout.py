"""The quick held-out check every trainer runs every `eval_steps`: fixed prompts and seeds, the base model's
images judged once, the model in training judged each time (win rate vs base, semantic accuracy)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..data.prompt_sets import load_prompt_set
from ..pipeline import Lift, seeded_images, text_encoder_fingerprint
from ..profiles import content_profile, heldout_prompts
from ..rewards import load_reward, parse_reward_options
from ..stats import win_rate
from ..files import atomic_write_json, json_text
from ..runs import cache_dir
from .common import autocast

__all__ = ["HeldOutEvaluator", "heldout_lines"]

def heldout_lines(source: str, n: int) -> list[dict]:
    """The first `n` prompts of a held-out set a model profile names (the world's "literal": a seed apart from the
    eval runs'), a registered prompt set (e.g. partiprompts, from its cache or original address) or a .jsonl file of
    {"prompt", "expected"?}."""
    records = heldout_prompts(source, n)
    return records if records is not None else load_prompt_set(source, num_prompts=n)


class HeldOutEvaluator:
    """`evaluator(lifts)` -> win rate vs base under `judge`, judge means, and semantic accuracy (world prompts)."""

    def __init__(self, pipe, source: str, num_prompts: int, judge: str, reward_option: Sequence[str] = (),
                 judge_bundle: Path | None = None, guidance_scale: float = 7.5, num_inference_steps: int = 25,
                 mixed_precision: str = "no", resolution: int | None = None, batch_size: int = 8):
        """`mixed_precision`: the trainer's; the images are made under its autocast (frozen models held in it).
        `resolution`: the images' side (default: the model's). `batch_size`: prompts per pipeline call."""
        self.pipe, self.guidance_scale, self.steps = pipe, guidance_scale, num_inference_steps
        self.batch_size = batch_size
        self.mixed_precision = mixed_precision
        self.size = {} if resolution is None else {"height": resolution, "width": resolution}
        self.lines = heldout_lines(source, num_prompts)
        self.prompts = [x["prompt"] for x in self.lines]
        self.judge = load_reward(judge, **parse_reward_options(reward_option).get(judge, {}))
        self.attributes = None
        # a content judge reads its own model's renders (the world's: the embedded model's); another model's only when
        # asked for by name
        profile = content_profile(pipe, judge_bundle)
        if profile is not None and all(isinstance(x.get("expected"), dict) for x in self.lines):
            self.attributes = profile.content_judge(judge_bundle)
            self.attribute_names = profile.attributes
        self.base = self._base_scores(judge, reward_option, judge_bundle)

    def _base_scores(self, judge: str, reward_option: Sequence[str], judge_bundle: Path | None) -> dict:
        """The base model's scores, from the held-out cache when a run of the same model, prompts, seeds, settings and
        judges made them (every run judges its base once; two runs of one model share it), else made and cached."""
        modules = {n: getattr(self.pipe, n) for n in ("unet", "vae", "text_encoder", "text_encoder_2")
                   if getattr(self.pipe, n, None) is not None}
        key = {"models": {n: text_encoder_fingerprint(m) for n, m in modules.items()},
               "scheduler": dict(self.pipe.scheduler.config), "prompts": self.lines, "guidance_scale": self.guidance_scale,
               "steps": self.steps, "size": self.size, "batch_size": self.batch_size,
               "mixed_precision": self.mixed_precision, "judge": judge,
               "judge_weights": text_encoder_fingerprint(self.judge), "reward_option": sorted(reward_option),
               "attributes": None if self.attributes is None else text_encoder_fingerprint(self.attributes)}
        path = cache_dir() / "heldout" / f"{hashlib.sha256(json_text(key).encode()).hexdigest()[:32]}.json"
        if path.is_file():
            return json.loads(path.read_text())
        scores = self.score(self.images([]))
        atomic_write_json(path, scores)
        return scores

    @classmethod
    def from_config(cls, pipe, cfg) -> "HeldOutEvaluator":
        """From a trainer's `MethodTrainConfig` (its eval_* fields)."""
        return cls(pipe, cfg.eval_prompts, cfg.num_eval_prompts, cfg.eval_judge, cfg.reward_option, cfg.judge_bundle,
                   cfg.eval_guidance_scale, cfg.eval_inference_steps, cfg.mixed_precision, cfg.eval_resolution,
                   cfg.eval_batch_size)

    def images(self, lifts: Sequence[Lift]) -> torch.Tensor:
        with autocast(self.mixed_precision, self.pipe.device):
            images = seeded_images(self.pipe, self.prompts, range(len(self.prompts)), lifts, batch_size=self.batch_size,
                                   guidance_scale=self.guidance_scale, num_inference_steps=self.steps, **self.size)
        return images.float()

    @torch.no_grad()
    def score(self, images: torch.Tensor) -> dict:
        out = {"judge": self.judge(images, self.prompts).float().cpu().tolist()}
        if self.attributes is not None:
            pred = self.attributes.predict(images.cpu())
            hits = {k: [p == x["expected"][k] for p, x in zip(pred[k], self.lines)] for k in self.attribute_names}
            out["semantic"] = {k: float(np.mean(v)) for k, v in hits.items()}
            out["semantic"]["all"] = float(np.mean([all(h[i] for h in hits.values()) for i in range(len(self.lines))]))
        return out

    def __call__(self, lifts: Sequence[Lift] = ()) -> dict:
        now = self.score(self.images(lifts))
        result = win_rate(now["judge"], self.base["judge"], self.prompts)
        metrics = {"win_rate_vs_base": result["win_rate"], "win_rate_ci95": result["ci95"],
                   "judge_mean": float(np.mean(now["judge"])), "judge_mean_base": float(np.mean(self.base["judge"]))}
        if "semantic" in now:
            metrics.update(semantic_all=now["semantic"]["all"], semantic_all_base=self.base["semantic"]["all"],
                           semantic=now["semantic"], semantic_base=self.base["semantic"])
        return metrics
