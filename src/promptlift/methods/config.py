"""The config every method's trainer shares (`MethodTrainConfig`): TrainConfig + the base model and the held-out
check. Imports neither torch nor diffusers, so `promptlift train NAME --help` and a YAML config read it quickly."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..profiles import judge_defaults, prompts_or_default, recommended_guidance_scale, refuse_content_options
from ..training.config import TrainConfig

__all__ = ["MethodTrainConfig"]


@dataclass
class MethodTrainConfig(TrainConfig):
    """TrainConfig + the base model and the held-out evaluation every method trainer runs every `eval_steps`."""

    pretrained_model_name_or_path: str | None = field(default=None, metadata={
        "help": "Base pipeline (hub id, folder or single-file checkpoint); default: the embedded model.",
        "aliases": ("model",)})
    model_config: str | None = field(default=None, metadata={
        "help": "For a single-file base model: a diffusers folder with its components' configs (needed offline)."})
    eval_prompts: str | None = field(default=None, metadata={
        "help": "Held-out prompts: a .txt or .jsonl file, a named set, or a world set (complex, literal, narrative-val); "
                "default: literal on the embedded model, none on another (name them)."})
    num_eval_prompts: int = field(default=64, metadata={"help": "Held-out prompts per evaluation."})
    eval_batch_size: int = field(default=8, metadata={
        "help": "Held-out prompts per pipeline call (with guidance, twice as many images per UNet call): bounds the "
                "check's memory, which at a full batch outgrows training's."})
    eval_judge: str | None = field(default=None, metadata={
        "help": "Reward judging the win rate vs base; never a training reward; default: world-aesthetic on the embedded "
                "model, else imagereward."})
    reward_option: list[str] = field(default_factory=list, metadata={"help": "REWARD.KEY=VALUE option of a reward; repeatable."})
    judge_bundle: Path | None = field(default=None, metadata={"help": "Bundle whose attribute judge measures semantic accuracy; default: the embedded one."})
    eval_guidance_scale: float | None = field(default=None, metadata={"help": "Guidance scale of the evaluation images; default: the model's recommended one."})
    eval_inference_steps: int = field(default=25, metadata={"help": "Denoising steps of the evaluation images."})
    best_metric: Literal["win_rate_vs_base", "semantic_all"] = field(default="win_rate_vs_base", metadata={
        "help": "What the best checkpoint (best/) maximises on the held-out check, ties broken by the other "
                "(semantic_all: all attributes right, read by a content judge; without one, the win rate)."})
    max_semantic_drop: float | None = field(default=None, metadata={
        "help": "A check whose all-attributes accuracy falls more than this below the base model's lost content: it "
                "never becomes best; default: 0.01 where a content judge reads the model's images (the world's attribute "
                "judge on the embedded model; refused on another model unless --judge_bundle names one)."})
    eval_resolution: int | None = field(default=None, metadata={"help": "Side of the evaluation images in pixels (multiple of 8); default: the model's."})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "Recompute the UNet's activations in the backward pass "
                                                                         "(less memory at full size, about a third more time)."})

    def __post_init__(self):
        super().__post_init__()
        refuse_content_options(self.pretrained_model_name_or_path, self.judge_bundle, max_semantic_drop=self.max_semantic_drop)
        self.max_semantic_drop = 0.01 if self.max_semantic_drop is None else self.max_semantic_drop
        if not 0 <= self.max_semantic_drop <= 1:
            raise ValueError(f"`max_semantic_drop` is a share of prompts, in [0, 1]; got {self.max_semantic_drop}.")
        from ..rewards import parse_reward_options

        parse_reward_options(self.reward_option)
        defaults = judge_defaults(self.pretrained_model_name_or_path)
        self.eval_prompts = prompts_or_default(self.eval_prompts, defaults.heldout_prompts,
                                               self.pretrained_model_name_or_path, "eval_prompts",
                                               " with held-out prompts the run does not train on")
        self.eval_judge = self.eval_judge or defaults.judge
        if min(self.num_eval_prompts, self.eval_batch_size, self.eval_inference_steps) < 1:
            raise ValueError(f"`num_eval_prompts`, `eval_batch_size` and `eval_inference_steps` must be >= 1, got "
                             f"{self.num_eval_prompts}, {self.eval_batch_size} and {self.eval_inference_steps}.")
        if self.eval_resolution is not None and (self.eval_resolution < 8 or self.eval_resolution % 8):
            raise ValueError(f"`eval_resolution` must be a multiple of 8 pixels, got {self.eval_resolution}.")
        if self.eval_guidance_scale is None:
            self.eval_guidance_scale = recommended_guidance_scale(self.pretrained_model_name_or_path)
