"""The config every trainer's shares (`TrainConfig`): steps, batch, optimizer, precision, checkpoints, EMA, logging.
Imports neither torch nor diffusers, so a command's `--help` and a YAML config read it quickly."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = ["TrainConfig"]


@dataclass
class TrainConfig:
    """Settings every trainer shares (names follow the diffusers training scripts)."""

    output_dir: Path = field(default=Path("runs/train"), metadata={"help": "Run folder: checkpoints/, logs.jsonl, results."})
    max_train_steps: int = field(default=1000, metadata={"help": "Optimizer steps in total."})
    train_batch_size: int = field(default=16, metadata={"help": "Micro-batch size per process."})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "Micro-batches per optimizer step."})
    learning_rate: float = field(default=1e-4, metadata={"help": "Peak learning rate (AdamW)."})
    adam_weight_decay: float = field(default=1e-2, metadata={"help": "AdamW weight decay."})
    optimizer: Literal["adamw", "adamw_8bit"] = field(default="adamw", metadata={
        "help": "AdamW, or bitsandbytes' 8-bit AdamW: moments stored in 8 bits (2 bytes of state per parameter instead "
                "of 8); needs `pip install 'promptlift[bnb]'`."})
    lr_scheduler: Literal["constant", "constant_with_warmup", "linear", "cosine"] = field(
        default="cosine", metadata={"help": "Learning-rate schedule after warm-up."}
    )
    lr_warmup_steps: int = field(default=100, metadata={"help": "Linear warm-up steps."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping norm (0 = off)."})
    mixed_precision: Literal["no", "fp16", "bf16"] | None = field(default=None, metadata={
        "help": "Autocast precision; default: what `accelerate config` set for `accelerate launch` "
                "(ACCELERATE_MIXED_PRECISION), else no."})
    use_ema: bool = field(default=False, metadata={"help": "Keep an exponential moving average of the weights."})
    ema_decay: float = field(default=0.999, metadata={"help": "EMA decay."})
    checkpointing_steps: int = field(default=500, metadata={"help": "Save a resumable checkpoint every N steps."})
    checkpoints_total_limit: int = field(default=2, metadata={"help": "Keep only the last k checkpoints."})
    resume_from_checkpoint: str | None = field(
        default=None, metadata={"help": "'latest' or a checkpoint folder to resume from."}
    )
    seed: int = field(default=0, metadata={"help": "Seed of weights init and data order."})
    logging_steps: int = field(default=25, metadata={"help": "Log metrics every N steps."})
    eval_steps: int = field(default=0, metadata={"help": "Run the evaluation every N steps (0 = only at the end)."})
    eval_at_end: bool = field(default=True, metadata={
        "help": "Also run the evaluation after the last step; --no-eval_at_end skips it (best/ then holds the best of "
                "the checks every `eval_steps`, if any; final/ the last weights either way)."})
    max_nonfinite_steps: int = field(default=10, metadata={"help": "Stop after this many non-finite losses in a row."})
    num_threads: int = field(default=0, metadata={
        "help": "CPU threads for torch (0 = torch's default); set before the trainer loads anything (`promptlift "
                "train` and `promptlift.train` alike), so caching keeps to them too."})
    report_to: Literal["none", "tensorboard"] = field(
        default="none", metadata={"help": "Also log to TensorBoard (in output_dir/tensorboard; needs `pip install tensorboard`)."}
    )

    def __post_init__(self):
        if self.mixed_precision is None:  # `accelerate launch` passes its configured precision in the environment
            self.mixed_precision = os.environ.get("ACCELERATE_MIXED_PRECISION", "no")
            if self.mixed_precision not in ("no", "fp16", "bf16"):
                raise ValueError(f"ACCELERATE_MIXED_PRECISION={self.mixed_precision!r} (from `accelerate config`) is "
                                 "not one of no, fp16, bf16; pass `--mixed_precision`.")
        for name in ("max_train_steps", "train_batch_size", "gradient_accumulation_steps", "checkpointing_steps",
                     "checkpoints_total_limit", "logging_steps", "max_nonfinite_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be >= 1, got {getattr(self, name)}.")
        if self.learning_rate <= 0:
            raise ValueError(f"`learning_rate` must be > 0, got {self.learning_rate}.")
        if not 0.0 < self.ema_decay < 1.0:
            raise ValueError(f"`ema_decay` must be in (0, 1), got {self.ema_decay}.")
