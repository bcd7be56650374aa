"""Generate images with fixed seeds and write each as a PNG with a JSON sidecar."""

from __future__ import annotations

import json
import re
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import torch
from diffusers import DiffusionPipeline, StableDiffusionXLPipeline
from tqdm.auto import tqdm

from . import __version__
from .config import to_dict
from .pipeline import (Lift, call_with_lifts, check_prompts, lift, load_pipeline, model_name,
                       pipeline_lifts, rewrite_prompts, seeded_images)
from .sampling import GenerateConfig, SamplingConfig
from .files import atomic_path, atomic_write_json, ensure_output_dir
from .images import default_font

__all__ = ["GenerateConfig", "SamplingConfig", "compare_sheet", "generate", "generate_images", "image_record", "image_seeds",
           "load_sampling", "sampling_kwargs"]


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
