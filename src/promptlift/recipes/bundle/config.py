"""The config of `promptlift world train-bundle`. It imports neither torch nor diffusers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = ["EXTRA_PARTS", "PARTS", "BundleConfig"]

PARTS = ("judge-attributes", "vae", "tokenizer", "clip", "aesthetic-reward", "aesthetic", "unet", "assemble",
         "measure")
EXTRA_PARTS = ("unet-snapshot",)  # run on request only: export a UNet run's latest EMA weights while it trains


@dataclass
class BundleConfig:
    """Train the embedded default bundle (or some of its parts) on the world; every part resumes where it stopped."""

    parts: list[str] = field(default_factory=lambda: list(PARTS), metadata={"help": "Parts to train, in order."})
    output_dir: Path = field(default=Path("runs/bundle/weights"), metadata={
        "help": "Bundle folder (final weights of every part; a part reads the parts before it from here). To replace "
                "the installed bundle, pass its folder (src/promptlift/bundle in a checkout)."})
    work_dir: Path = field(default=Path("runs/bundle"), metadata={"help": "Checkpoints and logs of every part."})
    num_threads: int = field(default=0, metadata={"help": "CPU threads for torch (0 = default)."})
    eval_size: int = field(default=512, metadata={"help": "Held-out renders per evaluation."})
    judge_steps: int = field(default=3000, metadata={"help": "Attribute judge steps."})
    judge_batch_size: int = field(default=48, metadata={"help": "Attribute judge batch size."})
    vae_steps: int = field(default=8000, metadata={"help": "Maximum VAE steps (stops early at `vae_target`)."})
    vae_batch_size: int = field(default=8, metadata={"help": "VAE batch size."})
    vae_target: float = field(default=0.98, metadata={"help": "Stop the VAE when every round-trip accuracy reaches this..."})
    vae_min_steps: int = field(default=4000, metadata={"help": "...but not before this many steps (detail keeps improving)."})
    vae_gate: float = field(default=0.95, metadata={"help": "The UNet starts only if every VAE round-trip accuracy is at least this."})
    vae_eval_steps: int = field(default=500, metadata={"help": "Evaluate the VAE gate every N steps."})
    clip_steps: int = field(default=3000, metadata={"help": "World CLIP steps."})
    clip_batch_size: int = field(default=128, metadata={"help": "World CLIP batch size."})
    aesthetic_steps: int = field(default=3000, metadata={"help": "Steps of each aesthetic predictor."})
    aesthetic_batch_size: int = field(default=32, metadata={"help": "Aesthetic predictor batch size."})
    unet_steps: int = field(default=16000, metadata={"help": "UNet steps (cosine schedule over these)."})
    unet_batch_size: int = field(default=32, metadata={"help": "UNet micro-batch size."})
    unet_learning_rate: float = field(default=2e-4, metadata={"help": "UNet peak learning rate."})
    unet_eval_steps: int = field(default=1000, metadata={"help": "Generate and judge held-out prompts every N UNet steps."})
    unet_init: Literal["scratch", "bundle"] = field(
        default="scratch", metadata={"help": "Start a UNet run with no checkpoint from scratch, or from the bundle's UNet."}
    )
    unet_eval_prompts: int = field(default=64, metadata={"help": "Held-out complex prompts judged at each UNet evaluation."})
    measure_prompts: int = field(default=200, metadata={"help": "Prompts per world prompt set when measuring."})
    measure_seeds: int = field(default=2, metadata={"help": "Seeds per prompt when measuring."})
    measure_guidance_scales: list[float] = field(
        default_factory=lambda: [2.0, 3.0, 4.0, 5.0], metadata={"help": "Guidance scales to choose the default from."}
    )
    measure_timing_batch: int = field(default=16, metadata={"help": "Batch size of the batched generation timing."})
    measure_inference_steps: int = field(default=25, metadata={"help": "Sampling steps of every measured image (the card's "
                                                                       "numbers are at 25).", "min": 1})
    caption_dropout: float = field(default=0.1, metadata={"help": "Share of empty captions (classifier-free guidance)."})

    def __post_init__(self):
        unknown = [p for p in self.parts if p not in PARTS + EXTRA_PARTS]
        if unknown:
            raise ValueError(f"unknown bundle part(s) {unknown}; valid parts: {list(PARTS + EXTRA_PARTS)}.")
        if not 0.0 <= self.caption_dropout < 1.0:
            raise ValueError(f"`caption_dropout` must be in [0, 1), got {self.caption_dropout}.")
