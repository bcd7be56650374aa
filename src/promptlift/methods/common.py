"""What every method trainer shares: the trainer base (`MethodTrainer`: the loop, the held-out check, best/ and
final/), the frozen base pipeline, and keeping the best weights by the held-out check."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, ClassVar

import torch
import yaml

from ..pipeline.cards import write_model_card
from ..pipeline import base_model_record, load_pipeline, write_base_model
from ..pipeline.lift_config import recorded_options, write_lift_config
from ..training import FitResult, fit
from .config import MethodTrainConfig
from ..files import atomic_write_json, atomic_write_text

__all__ = ["BestKeeper", "MethodTrainConfig", "MethodTrainer", "autocast", "best_score", "freeze_pipeline", "load_frozen_pipeline"]

PIPELINE_MODELS = ("vae", "unet", "text_encoder", "text_encoder_2")
HALF_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


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


class MethodTrainer:
    """The base of every method's trainer, as trl's trainers are one per method over one loop: a subclass builds its
    base pipeline, data and `model` in `__init__` and says how a batch is drawn (`batch`), what it costs (`loss`), how
    the held-out check judges the model (`evaluate`) and how its weights are written (`save`, the one saver of best/
    and final/); `train()` does the rest, the same for every method: the shared loop (`fit`: accumulation, mixed
    precision, checkpoints, exact resume), the check every `eval_steps`, best/ by `best_score` (a check that loses
    content never becomes best), final/ and eval_history.json, each folder of weights with its lift_config.json,
    recipe and model card.

    Subclasses set `method` (the METHODS name its folders are recorded under) and call `super().__init__(cfg, pipe)`
    with the base pipeline before any weights are added to it (its record is what the lift checks when loaded)."""

    method: ClassVar[str]
    model: torch.nn.Module

    def __init__(self, cfg: MethodTrainConfig, pipe, options: dict | None = None):
        """`options`: lift options the weights are judged with, recorded in their folders as the lift's defaults."""
        self.cfg, self.pipe = cfg, pipe
        self.output_dir = Path(cfg.output_dir)
        self.keeper = BestKeeper(self.output_dir, cfg, pipe, self.method, options)

    def batch(self, index: int) -> Any:
        """Micro-batch `index`, a pure function of it (a resumed run draws what the uninterrupted one did)."""
        raise NotImplementedError

    def loss(self, model: torch.nn.Module, batch: Any) -> tuple[torch.Tensor, dict]:
        """(loss, terms to log) of `batch` under `model` (the prepared model: wrapped under a launch)."""
        raise NotImplementedError

    def evaluate(self, model: torch.nn.Module, step: int) -> dict:
        """The held-out check's metrics at `step`, ranked by `best_score`."""
        raise NotImplementedError

    def save(self, model: torch.nn.Module, folder: Path, step: int | None = None) -> None:
        """Write `model`'s weights into `folder` (best/ with the check's `step`, final/ without), atomically."""
        raise NotImplementedError

    def parameters(self) -> list[torch.nn.Parameter] | None:
        """What the optimizer trains (default: `model`'s parameters that require grad)."""
        return None

    def should_stop(self, metrics: dict) -> bool:
        """True stops training after a held-out check (default: never early)."""
        return False

    def train(self) -> Path:
        """Train `model`; returns the run folder (best/ and final/ inside)."""

        def eval_fn(model, step):
            metrics = self.evaluate(model, step)
            self.keeper.keep(step, metrics, lambda folder: self.save(model, folder, step))
            return metrics

        result = fit(self.cfg, self.model, self.loss, self.batch, params=self.parameters(), eval_fn=eval_fn,
                     stop_fn=self.should_stop, desc=self.method)
        if result.is_main_process:  # the last weights (one writer under a multi-process launch)
            self.save(result.model, self.output_dir / "final")
            self.keeper.mark(self.output_dir / "final")
        self.keeper.write_history(result)
        return self.output_dir
