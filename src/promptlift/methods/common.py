"""What every method trainer shares: its config's base model and held-out evaluation settings, the frozen base
pipeline, and keeping the best weights by the held-out check."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

import torch
import yaml

from ..pipeline.cards import write_model_card
from ..pipeline import base_model_record, load_pipeline, recommended_guidance_scale, write_base_model
from ..pipeline.lift_config import recorded_options, write_lift_config
from ..rewards import parse_reward_options
from ..profiles import judge_defaults, prompts_or_default, refuse_content_options
from ..training import FitResult, TrainConfig
from ..files import atomic_write_json, atomic_write_text

__all__ = ["BestKeeper", "MethodTrainConfig", "autocast", "best_score", "freeze_pipeline", "load_frozen_pipeline"]

PIPELINE_MODELS = ("vae", "unet", "text_encoder", "text_encoder_2")
HALF_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


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


def load_frozen_pipeline(cfg: MethodTrainConfig, train: str | None = None):
    """The config's base pipeline, every model in it frozen (no gradients, eval mode) but `train`; the UNet
    checkpointed when `cfg.gradient_checkpointing` (it also saves memory when frozen: gradients flow through it).

    The model that trains stays fp32; frozen ones are held in `cfg.mixed_precision`'s dtype (half the memory, as the
    diffusers training scripts do), but a VAE whose config asks to be upcast (SDXL's overflows in fp16)."""
    pipe = freeze_pipeline(load_pipeline(cfg.pretrained_model_name_or_path, dtype="float32", config=cfg.model_config), train)
    dtype = HALF_DTYPES.get(cfg.mixed_precision)
    for name in PIPELINE_MODELS if dtype is not None else ():
        module = getattr(pipe, name, None)
        if module is not None and name != train and not (name == "vae" and module.config.get("force_upcast")):
            module.to(dtype)
    if cfg.gradient_checkpointing:
        pipe.unet.enable_gradient_checkpointing()
    return pipe


def autocast(mixed_precision: str, device: torch.device | str):
    """Autocast to `mixed_precision`'s dtype on `device` ("no": off), as the training loop runs the loss: trainers wrap
    what runs outside it (caching, the held-out check) so that frozen models in half precision meet fp32 ones."""
    dtype = HALF_DTYPES.get(mixed_precision)
    return torch.autocast(torch.device(device).type, dtype=dtype, enabled=dtype is not None)


def freeze_pipeline(pipe, train: str | None = None):
    """Every model of `pipe` frozen (no gradients, eval mode) but `train`; returns `pipe`."""
    for name in PIPELINE_MODELS:
        module = getattr(pipe, name, None)
        if module is not None and name != train:
            module.requires_grad_(False).eval()
    return pipe


def best_score(metrics: dict, cfg: MethodTrainConfig) -> list[float] | None:
    """How a held-out check ranks, higher better, compared in order (the second breaks ties): the one rule of every
    method's best/. None, never best: a check that lost content (all-attributes accuracy more than
    `cfg.max_semantic_drop` below the base model's). A judged check ranks by `cfg.best_metric` (the win rate vs base,
    ties broken by the judge's mean; or all attributes right, ties broken by the win rate); a check without images
    (a text-only refiner's) by its held-out cross-entropy, lower better."""
    if "semantic_all" in metrics and metrics["semantic_all"] < metrics["semantic_all_base"] - cfg.max_semantic_drop:
        return None
    if "win_rate_vs_base" not in metrics:
        return [-metrics["heldout_ce"]]
    if cfg.best_metric == "semantic_all" and "semantic_all" in metrics:
        return [metrics["semantic_all"], metrics["win_rate_vs_base"]]
    return [metrics["win_rate_vs_base"], metrics["judge_mean"]]


class BestKeeper:
    """The held-out check's history and the best weights so far: `keep(step, metrics, save)` calls
    `save(output_dir / "best")` and writes best/eval.json when the check's `best_score` beats every earlier one (None
    never counts). A resumed run keeps competing with the best its earlier part saved.

    Every folder of weights it writes (best/, and final/ through `mark`) also gets what the output needs to be used
    elsewhere: lift_config.json (the lift's type, options and the model it was trained on, checked when it is
    loaded), recipe.yaml (the config) and README.md (its model card); the run folder gets base_model.json."""

    def __init__(self, output_dir: Path, cfg: MethodTrainConfig | None = None, pipe=None, method: str | None = None,
                 options: dict | None = None):
        """`cfg`, `pipe`, `method`: the run's config, the base pipeline before training and the method's name;
        `options`: lift options the weights were judged with, recorded as their defaults (over the lift's own)."""
        from ..config import to_dict

        self.output_dir = Path(output_dir)
        best = self.output_dir / "best" / "eval.json"
        self.best = json.loads(best.read_text()).get("score") if best.is_file() else None
        if isinstance(self.best, (int, float)):  # a run of an older release wrote one number
            self.best = [self.best]
        self.cfg = cfg
        self.since_best, self.history = 0, []
        self.method, self.options = method, dict(options or {})
        self.base = base_model_record(pipe, cfg.pretrained_model_name_or_path) if pipe is not None else None
        self.recipe = yaml.safe_dump(to_dict(cfg), sort_keys=False) if cfg is not None else None

    def mark(self, folder: Path, metrics: dict | None = None) -> None:
        """Write lift_config.json, recipe.yaml and the model card into a folder of saved weights."""
        if self.base is None:
            return
        folder = Path(folder)
        write_base_model(self.output_dir, self.base)  # a run folder given as PATH is checked too
        if self.recipe is not None:
            atomic_write_text(folder / "recipe.yaml", self.recipe)
        if self.method is not None:
            write_lift_config(folder, self.method, self.base,
                              {**recorded_options(self.method, folder), **self.options})
        else:
            write_base_model(folder, self.base)
        write_model_card(folder, self.method or "lift", self.base, metrics, self.recipe)

    def keep(self, step: int, metrics: dict, save: Callable[[Path], None]) -> bool:
        """Record the check at `step`; True when it was the best so far (and saved)."""
        self.history.append({"step": step, **metrics})
        score = best_score(metrics, self.cfg)
        if score is None or (self.best is not None and score <= self.best):
            self.since_best += 1
            return False
        self.best, self.since_best = score, 0
        save(self.output_dir / "best")
        atomic_write_json(self.output_dir / "best" / "eval.json", {"step": step, "score": score, **metrics})
        self.mark(self.output_dir / "best", {"step": step, **metrics})
        return True

    def write_history(self, result: FitResult) -> None:
        """eval_history.json, by the main process only (one writer under a multi-process launch)."""
        if result.is_main_process:
            atomic_write_json(self.output_dir / "eval_history.json", self.history)
