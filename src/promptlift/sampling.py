"""How images are sampled (`SamplingConfig`: model, lifts, sampler settings, shared by generate and eval) and what
`promptlift generate` makes (`GenerateConfig`). Imports neither torch nor diffusers, so `--help` and a YAML config
read them quickly; generation.py does the sampling."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .profiles import recommended_guidance_scale

__all__ = ["GenerateConfig", "SamplingConfig"]


@dataclass
class SamplingConfig:
    """How images are sampled: model, lifts and sampler settings (shared by generate and eval)."""

    model: str | None = field(default=None, metadata={
        "help": "Diffusers pipeline folder, hub id, or single-file checkpoint (.safetensors/.ckpt, SD 1.x/2.x/SDXL); "
                "default: the embedded model."})
    model_config: str | None = field(default=None, metadata={
        "help": "For a single-file --model: a diffusers folder (or hub id) with its components' configs, of the same "
                "architecture; needed offline."})
    variant: str | None = field(default=None, metadata={"help": "Weights variant of a diffusers --model (e.g. fp16)."})
    revision: str | None = field(default=None, metadata={"help": "Hub revision (branch, tag or commit) of --model."})
    scheduler: str | None = field(default=None, metadata={
        "help": "Diffusers scheduler class to sample with (e.g. DPMSolverMultistepScheduler), from the model's "
                "scheduler config; default: the model's own."})
    cpu_offload: bool = field(default=False, metadata={
        "help": "Keep each model on the GPU only while it runs (diffusers' model CPU offload): less GPU memory."})
    lift: list[str] = field(
        default_factory=list, metadata={"help": "Lift to apply, as NAME[=PATH]; repeatable (see `promptlift lifts`)."}
    )
    lift_option: list[str] = field(
        default_factory=list, metadata={"help": "Option of a lift, as LIFT.KEY=VALUE (e.g. textcraftor.alpha=0.5); repeatable."}
    )
    lifted: bool = field(default=False, metadata={
        "help": "Apply the whole lifted stack: refiner, quality-tuning, SUR-adapter, TextCraftor (the bundle's weights, "
                "or those `--lift NAME=PATH` gives; on another model every one needs its PATH), in the order they "
                "compose, with the stack's options (`promptlift.pipeline.stack.STACK`) unless a `--lift_option` "
                "says otherwise."})
    num_inference_steps: int = field(default=25, metadata={"help": "Denoising steps.", "min": 1, "max": 1000})
    guidance_scale: float | None = field(default=None, metadata={
        "help": "Classifier-free guidance scale (<= 1 turns CFG off); default: the model's promptlift.json "
                "(the embedded model's measured best), else 7.5.", "min": 0, "max": 100})
    height: int | None = field(default=None, metadata={"help": "Image height in pixels (multiple of 8); default: the model's."})
    width: int | None = field(default=None, metadata={"help": "Image width in pixels (multiple of 8); default: the model's."})
    negative_prompt: str | None = field(default=None, metadata={"help": "Negative prompt, shared by all images."})
    prompt_2: str | None = field(default=None, metadata={
        "help": "SDXL only: the prompt of its second text encoder, shared by all images (the lifts rewrite it as they "
                "do the prompt); default: the prompt."})
    negative_prompt_2: str | None = field(default=None, metadata={
        "help": "SDXL only: the negative prompt of its second text encoder; default: the negative prompt."})
    batch_size: int = field(default=4, metadata={"help": "Images generated per forward pass.", "min": 1, "max": 4096})
    on_long_prompt: Literal["error", "truncate"] = field(
        default="error", metadata={"help": "A prompt over the text encoder's token limit: refuse it, or cut it and record what was cut."}
    )
    device: str | None = field(default=None, metadata={"help": "Device (cuda, cpu, ...); default: CUDA when present."})
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = field(
        default="auto", metadata={"help": "Weights dtype; auto = fp32 on CPU, fp16 on GPU."}
    )

    def __post_init__(self):
        if self.lifted:
            from .pipeline.stack import expand_stack

            self.lift, self.lift_option = expand_stack(self.lift, self.lift_option)
        for name in ("num_inference_steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be >= 1, got {getattr(self, name)}.")
        if self.guidance_scale is None:
            self.guidance_scale = recommended_guidance_scale(self.model_config or self.model)
        if self.guidance_scale < 0:
            raise ValueError(f"`guidance_scale` must be >= 0, got {self.guidance_scale}.")
        for name in ("height", "width"):
            value = getattr(self, name)
            if value is not None and (value <= 0 or value % 8):
                raise ValueError(f"`{name}` must be a positive multiple of 8, got {value}; try {max(8, value // 8 * 8)}.")


@dataclass
class GenerateConfig(SamplingConfig):
    """Generate images from prompts; write a PNG and a JSON sidecar (prompt, seed, settings, timings) per image."""

    prompt: list[str] = field(default_factory=list, metadata={"help": "Prompts to generate from."})
    seed: int = field(default=0, metadata={"help": "Seed of the first image of each prompt; image k uses seed+k.",
                                           "min": 0, "max": 2**32 - 1})
    num_images_per_prompt: int = field(default=1, metadata={"help": "Images per prompt.", "min": 1, "max": 10000})
    output_dir: Path = field(default=Path("outputs"), metadata={"help": "Folder for the PNGs and their JSON sidecars."})
    refine: bool = field(default=False, metadata={"help": "Rewrite each prompt with the prompt refiner first (the bundle's, "
                                                          "or `--lift refiner=PATH`); the refined prompt is printed and kept in the sidecar."})
    compare_base: bool = field(default=False, metadata={
        "help": "Also generate the base model's images (no lift) of the same prompts and seeds into OUTPUT_DIR/base and "
                "write OUTPUT_DIR/sheet.png: each image beside the base model's, labelled with its prompt and seed."})

    def __post_init__(self):
        super().__post_init__()
        if self.refine and not any(spec.partition("=")[0].strip() == "refiner" for spec in self.lift):
            self.lift = ["refiner", *self.lift]
        if not self.prompt:
            raise ValueError("no prompt given; pass at least one PROMPT.")
        if self.num_images_per_prompt < 1:
            raise ValueError(f"`num_images_per_prompt` must be >= 1, got {self.num_images_per_prompt}.")
        if self.compare_base and not self.lift:
            raise ValueError("`compare_base` compares lifted images with the base model's, but no lift is given; add "
                             "`--lifted` or `--lift NAME`.")
