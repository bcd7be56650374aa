"""`promptlift memory`: will this training fit on my GPU? The memory model (model.py) asked about a user's model,
method, resolution, batch, precision, optimizer and card: no weights read (configs only, parameters counted on the
meta device), seconds on a CPU."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .model import ARCHITECTURES, FIT, GPUS, PAPER_RESOLUTION, GiB, load_models, max_batch, project

__all__ = ["MemoryConfig", "estimate", "format_estimate"]

ARCHS = ("sd15", "sd21", "sdxl")


@dataclass
class MemoryConfig:
    """Project a training step's peak GPU memory, the largest batch per card and the accumulation a batch needs."""

    model: str = field(default="sd15", metadata={
        "help": "sd15, sd21 or sdxl, or a diffusers folder, hub id (from the local cache) or single file (with "
                "--model_config) of one of those families; its configs are read, never its weights."})
    model_config: str | None = field(default=None, metadata={"help": "For a single-file --model: its config folder."})
    method: Literal["quality-tuning", "sur-adapter", "textcraftor", "refiner"] = field(
        default="quality-tuning", metadata={"help": "What trains."})
    use_lora: bool = field(default=False, metadata={"help": "quality-tuning: a LoRA of the UNet instead of all of it."})
    grad_steps: int = field(default=1, metadata={"help": "textcraftor: sampling steps back-propagated through (K).",
                                                 "min": 1, "max": 50})
    resolution: int | None = field(default=None, metadata={
        "help": "Image side in pixels; default: the family's (512, 768, 1024).", "min": 64, "max": 4096})
    train_batch_size: int = field(default=1, metadata={"help": "Rows per device and step.", "min": 1, "max": 4096})
    total_batch_size: int | None = field(default=None, metadata={
        "help": "A batch to reach with gradient accumulation: the accumulation each card size needs is printed."})
    num_processes: int = field(default=1, metadata={"help": "GPUs the batch is spread over.", "min": 1, "max": 4096})
    mixed_precision: Literal["no", "fp16", "bf16"] = field(default="bf16", metadata={
        "help": "Frozen weights and activations in half precision (trained weights, gradients and state stay fp32)."})
    optimizer: Literal["adamw", "adamw_8bit"] = field(default="adamw", metadata={"help": "Optimizer (its state size)."})
    gradient_checkpointing: bool = field(default=True, metadata={
        "help": "Measured with it only; without it activations are several times larger and not projected."})
    gpu: list[float] = field(default_factory=lambda: list(GPUS), metadata={"help": "Card sizes in GiB; repeatable."})

    def __post_init__(self):
        if not self.gradient_checkpointing:
            raise ValueError("`gradient_checkpointing` off is not measured (every point in the memory model's data ran "
                             "with it), so it cannot be projected; keep it on, or measure with `promptlift memory calibrate` "
                             "--no-gradient_checkpointing.")
        if self.grad_steps < 1 or self.train_batch_size < 1 or self.num_processes < 1:
            raise ValueError("`grad_steps`, `train_batch_size` and `num_processes` must be >= 1.")
        if self.resolution is not None and self.resolution % 8:
            raise ValueError(f"`resolution` must be a multiple of 8, got {self.resolution}.")
        if not self.gpu or min(self.gpu) <= 0:
            raise ValueError(f"`gpu` must be card sizes in GiB > 0, got {self.gpu}.")


def _unet_config(cfg: MemoryConfig) -> dict:
    """The UNet config of `cfg.model`: a family's shipped one, a folder's, a single file's config folder's, or a hub
    id's from the local cache."""
    if cfg.model in ARCHS:
        return json.loads((ARCHITECTURES / cfg.model / "unet.json").read_text())
    path = Path(cfg.model).expanduser()
    folder = Path(cfg.model_config).expanduser() if path.is_file() and cfg.model_config else path
    if path.is_file() and not cfg.model_config:
        raise ValueError(f"`model` {cfg.model!r} is a single file; pass --model_config with its diffusers config folder "
                         "(or an architecture name: sd15, sd21, sdxl).")
    if folder.is_dir():
        unet = folder / "unet" / "config.json"
        if not unet.is_file():
            raise ValueError(f"`model` {str(folder)!r} has no unet/config.json; pass a diffusers folder or sd15/sd21/sdxl.")
        return json.loads(unet.read_text())
    from huggingface_hub import hf_hub_download

    try:
        return json.loads(Path(hf_hub_download(cfg.model, "unet/config.json")).read_text())
    except Exception as e:
        raise ValueError(f"`model` {cfg.model!r} is not sd15/sd21/sdxl, a folder or a hub id whose config is at hand "
                         f"({type(e).__name__}); pass one of those.") from None


def _family(unet: dict) -> str:
    """The measured architecture a UNet config belongs to (by its conditioning, not its name)."""
    if unet.get("addition_embed_type") == "text_time":
        return "sdxl"
    return "sd21" if unet.get("cross_attention_dim") == 1024 else "sd15"


def _parameters(unet: dict) -> int:
    import torch
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        return sum(p.numel() for p in UNet2DConditionModel.from_config(unet).parameters())


def _method_key(cfg: MemoryConfig) -> str:
    if cfg.method == "quality-tuning":
        return "quality-tuning-lora" if cfg.use_lora else "quality-tuning"
    if cfg.method == "textcraftor":
        return "textcraftor-k1" if cfg.grad_steps == 1 else "textcraftor-k5"
    return cfg.method


def estimate(cfg: MemoryConfig, models: dict | None = None) -> dict:
    """The projection for `cfg`: peak GiB at its batch, the largest batch per card, the accumulation to
    `total_batch_size`, and which terms are extrapolated beyond what was measured."""
    unet = _unet_config(cfg)
    family = _family(unet)
    models = load_models() if models is None else models
    key = (family, _method_key(cfg))
    if key not in models:
        raise ValueError(f"{cfg.method} on {family} has no measured point; run `promptlift memory calibrate --arch {family}`.")
    m = dict(models[key])
    resolution = cfg.resolution or PAPER_RESOLUTION[family]
    extrapolated = []
    reference = json.loads((ARCHITECTURES / family / "unet.json").read_text())
    if {k: v for k, v in unet.items() if not k.startswith("_") and k != "sample_size"} != \
            {k: v for k, v in reference.items() if not k.startswith("_") and k != "sample_size"}:
        ratio = _parameters(unet) / _parameters(reference)
        for name in ("frozen", "other", "trainable", "temporaries"):
            m[name] *= ratio
        m["forward"], m["backward"] = [(a * ratio, b * ratio) for a, b in (m["forward"], m["backward"])]
        extrapolated.append(f"the UNet differs from the measured {family}: every term scaled by its parameter count "
                            f"({ratio:.2f}x)")
    measured = sorted(m["rows"]) or list(FIT)
    if resolution > max(measured):
        extrapolated.append(f"activations at {resolution} px, beyond the largest measured ({max(measured)} px)")
    if cfg.mixed_precision != "no":
        extrapolated.append(f"{cfg.mixed_precision}: frozen weights and activations halved from the fp32 measurements")
    if m.get("derived"):
        extrapolated.append(f"{key[1]} on {family} derived, not measured (see `promptlift memory calibrate`)")
    if cfg.method == "textcraftor" and cfg.grad_steps > 5:
        extrapolated.append(f"K = {cfg.grad_steps} beyond the measured K = 1 and 5 (each checkpointed step adds a latent)")
    kw = dict(optimizer=cfg.optimizer, half=cfg.mixed_precision != "no")
    peak = project(m, resolution, cfg.train_batch_size, **kw)
    fits = {gpu: max_batch(m, resolution, gpu, **kw) for gpu in cfg.gpu}
    result = {"model": cfg.model, "architecture": family, "method": key[1], "resolution": resolution,
              "train_batch_size": cfg.train_batch_size, "mixed_precision": cfg.mixed_precision, "optimizer": cfg.optimizer,
              "peak_gib": round(peak / GiB, 2), "max_batch": fits, "extrapolated": extrapolated}
    if cfg.total_batch_size:
        result["gradient_accumulation"] = {
            gpu: math.ceil(cfg.total_batch_size / (batch * cfg.num_processes)) if batch else None for gpu, batch in fits.items()}
    return result


def format_estimate(result: dict) -> str:
    """The projection as a few lines of text."""
    lines = [f"{result['method']} on {result['model']} ({result['architecture']}) at {result['resolution']} px, "
             f"batch {result['train_batch_size']}, {result['mixed_precision']}, {result['optimizer']}: "
             f"projected peak {result['peak_gib']:.1f} GiB"]
    for gpu, batch in result["max_batch"].items():
        accumulation = result.get("gradient_accumulation", {}).get(gpu)
        reach = f"; gradient_accumulation_steps {accumulation} reaches the total batch" if accumulation else ""
        lines.append(f"  {gpu:g} GiB card: largest batch {batch}" + (reach if batch else " (does not fit)"))
    lines += [f"  extrapolated: {x}" for x in result["extrapolated"]] or ["  every term within what was measured"]
    return "\n".join(lines)
