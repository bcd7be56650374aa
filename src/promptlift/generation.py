"""Generate images with fixed seeds and write each as a PNG with a JSON sidecar."""

from __future__ import annotations

import json
import re
import textwrap
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import torch
from diffusers import DiffusionPipeline, StableDiffusionXLPipeline
from tqdm.auto import tqdm

from . import __version__
from .config import to_dict
from .pipeline import (Lift, call_with_lifts, check_prompts, lift, load_pipeline, model_name,
                       pipeline_lifts, recommended_guidance_scale, rewrite_prompts, seeded_images)
from .pipeline.stack import expand_stack
from .files import atomic_path, atomic_write_json, ensure_output_dir
from .images import default_font

__all__ = ["GenerateConfig", "SamplingConfig", "compare_sheet", "generate", "generate_images", "image_record", "image_seeds",
           "load_sampling", "sampling_kwargs"]


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


def load_sampling(cfg: SamplingConfig) -> tuple[DiffusionPipeline, list[Lift]]:
    """The pipeline a sampling config names, lifted (`promptlift.lift`) with its lifts, and those lifts."""
    pipe = load_pipeline(cfg.model, device=cfg.device, dtype=cfg.dtype, scheduler=cfg.scheduler, cpu_offload=cfg.cpu_offload,
                         config=cfg.model_config, variant=cfg.variant, revision=cfg.revision)
    second = [name for name in ("prompt_2", "negative_prompt_2") if getattr(cfg, name) is not None]
    if second and not isinstance(pipe, StableDiffusionXLPipeline):
        raise ValueError(f"`--{second[0]}` is for SDXL's second text encoder; this model is a {type(pipe).__name__}: "
                         f"drop it.")
    if cfg.lift or cfg.lift_option:
        lift(pipe, cfg.lift, cfg.lift_option, reversible=False)
    return pipe, pipeline_lifts(pipe)


def image_seeds(seed: int, num_images_per_prompt: int) -> list[int]:
    """The seed of each image of one prompt: the same for every prompt, so systems compare on equal noise."""
    return [seed + k for k in range(num_images_per_prompt)]


def _slug(text: str, length: int = 40) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower())[:length].strip("-") or "prompt"


def _batches(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _calls(num_prompts: int, seeds: list[int], batch_size: int):
    """(prompt indices, seeds) of each pipeline call: whole prompts with all their seeds, `batch_size` images a call
    at most (a prompt with more seeds than that is split over calls)."""
    if batch_size >= len(seeds):
        for indices in _batches(list(range(num_prompts)), batch_size // len(seeds)):
            yield indices, seeds
    else:
        for i in range(num_prompts):
            for part in _batches(seeds, batch_size):
                yield [i], part


def generate(cfg: GenerateConfig, pipe: DiffusionPipeline | None = None, lifts: list[Lift] | None = None) -> list[Path]:
    """Generate `num_images_per_prompt` images per prompt; write PNG + JSON sidecar each; return the PNG paths.

    Pass `pipe` (and its `lifts`) to reuse a loaded pipeline; otherwise it is loaded from `cfg.model`.
    """
    output_dir = ensure_output_dir(cfg.output_dir)
    t0 = time.perf_counter()
    if pipe is None:
        pipe, lifts = load_sampling(cfg)
    lifts = lifts or []
    load_s = time.perf_counter() - t0
    prompts = rewrite_prompts(list(cfg.prompt), lifts)
    cut = check_prompts(pipe, prompts, cfg.on_long_prompt)
    pipe.set_progress_bar_config(disable=True)

    seeds = image_seeds(cfg.seed, cfg.num_images_per_prompt)
    paths = []
    with tqdm(total=len(prompts) * len(seeds), desc="generate", unit="img") as bar:
        for indices, call_seeds in _calls(len(prompts), seeds, cfg.batch_size):
            t1 = time.perf_counter()
            # as a user's `pipe(prompts, num_images_per_prompt=N, generator=[...])`: a generator per image, prompt by prompt
            gens = [torch.Generator("cpu").manual_seed(s) for _ in indices for s in call_seeds]
            images = call_with_lifts(pipe, lifts, [cfg.prompt[i] for i in indices], rewritten=[prompts[i] for i in indices],
                                     num_images_per_prompt=len(call_seeds), generator=gens, output_type="pil",
                                     **sampling_kwargs(cfg)).images
            per_image_s = (time.perf_counter() - t1) / len(images)
            for (i, seed), image in zip([(i, s) for i in indices for s in call_seeds], images):
                sidecar = image_record(cfg, pipe, lifts, cfg.prompt[i], prompts[i], seed, image, truncated=cut.get(i),
                                       timings={"load_s": round(load_s, 4), "generate_s_per_image": round(per_image_s, 4)})
                paths.append(_write_image(output_dir / f"{i:03d}-{_slug(cfg.prompt[i])}-seed{seed}", image, sidecar))
                bar.update(1)
    if cfg.compare_base:
        base = replace(cfg, lift=[], lift_option=[], lifted=False, refine=False, compare_base=False,
                       output_dir=output_dir / "base")
        compare_sheet(generate(base), paths, output_dir / "sheet.png")
    return paths


def image_record(cfg: SamplingConfig, pipe: DiffusionPipeline, lifts: list[Lift], prompt: str, prompt_used: str,
                 seed: int, image, truncated: str | None = None, timings: dict | None = None) -> dict:
    """An image's JSON sidecar: the sampling settings, the prompt and the one the pipeline read, the seed, the model
    and each lift with its weights and options (`Lift.describe`): what reproduces it. The app's downloads are these too."""
    settings = {k: v for k, v in to_dict(cfg).items() if k not in ("prompt", "output_dir", "lift", "lift_option", "refine",
                                                                 "lifted", "compare_base", "seed", "num_images_per_prompt")}
    return {**settings, "prompt": prompt, "prompt_used": prompt_used, "truncated": truncated, "seed": seed,
            "num_images_per_prompt": getattr(cfg, "num_images_per_prompt", 1), "model": model_name(pipe),
            "pipeline": type(pipe).__name__, "scheduler": type(pipe.scheduler).__name__,
            "lifts": [lift.describe() for lift in lifts], "height": image.height, "width": image.width,
            "timings": timings or {}, "promptlift_version": __version__}


def compare_sheet(base: list[Path], lifted: list[Path], output: Path, scale: int = 3) -> Path:
    """A PNG with a row per image: the base model's image, the lifted one (same prompt and seed), and the prompt,
    the prompt the lifted pipeline used when a lift rewrote it, the seed and the lifts, read from the sidecars."""
    from PIL import Image, ImageDraw

    rows = [(Image.open(b).convert("RGB"), Image.open(a).convert("RGB"), json.loads(a.with_suffix(".json").read_text()))
            for b, a in zip(base, lifted)]
    w, h = rows[0][0].width * scale, rows[0][0].height * scale
    pad, text_w, head = 8, 560, 24
    font, bold = default_font(13), default_font(15)
    sheet = Image.new("RGB", (2 * w + text_w + 4 * pad, head + len(rows) * (h + pad) + pad), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    lifts = ", ".join(lift["name"] for lift in rows[0][2]["lifts"])
    for x, label in ((pad, "base model"), (w + 2 * pad, f"lifted ({lifts})")):
        draw.text((x, 4), label, fill=(20, 20, 20), font=bold)
    for r, (b, a, sidecar) in enumerate(rows):
        y = head + r * (h + pad)
        sheet.paste(b.resize((w, h), Image.NEAREST), (pad, y))
        sheet.paste(a.resize((w, h), Image.NEAREST), (w + 2 * pad, y))
        lines = textwrap.wrap(f"prompt: {sidecar['prompt']}", 70) + [f"seed {sidecar['seed']}"]
        if sidecar["prompt_used"] != sidecar["prompt"]:
            lines += textwrap.wrap(f"lifted pipeline read: {sidecar['prompt_used']}", 70)
        for j, line in enumerate(lines):
            draw.text((2 * w + 3 * pad, y + 4 + 17 * j), line, fill=(20, 20, 20) if j else (150, 30, 30), font=font)
    with atomic_path(output, suffix=".png") as tmp:
        sheet.save(tmp, format="PNG")
    return output


@torch.no_grad()
def generate_images(pipe, cfg: SamplingConfig, prompts: list[str], seeds: list[int], lifts: list[Lift],
                    user_prompts: list[str] | None = None) -> list:
    """One pipeline call with `cfg`'s sampling settings -> PIL images (see `seeded_images`). `prompts` are the
    rewritten prompts (`rewrite_prompts`), `user_prompts` what the user wrote (see `encode_prompts`)."""
    return seeded_images(pipe, prompts, seeds, lifts, user_prompts=user_prompts or prompts, output_type="pil",
                         **sampling_kwargs(cfg))


def sampling_kwargs(cfg: SamplingConfig) -> dict:
    """The pipeline call's arguments a sampling config sets."""
    second = {name: getattr(cfg, name) for name in ("prompt_2", "negative_prompt_2") if getattr(cfg, name) is not None}
    return dict(guidance_scale=cfg.guidance_scale, negative_prompt=cfg.negative_prompt,
                num_inference_steps=cfg.num_inference_steps, height=cfg.height, width=cfg.width, **second)


def _write_image(stem: Path, image, sidecar: dict) -> Path:
    """Write `stem`.png and `stem`.json, each atomically."""
    png = stem.with_suffix(".png")
    with atomic_path(png, suffix=".png") as tmp:
        image.save(tmp, format="PNG")
    atomic_write_json(stem.with_suffix(".json"), sidecar)
    return png
