"""Load any diffusers Stable Diffusion pipeline (hub id, local folder, or the embedded default)."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from typing import Sequence

import torch
from diffusers import DiffusionPipeline, StableDiffusionPipeline, StableDiffusionXLPipeline

from ..judges.bundle import BUNDLE_DIR
from ..utils import check_device, default_device, resolve_dtype
from .lifts import Lift, apply_lifts

__all__ = ["MODEL_DEFAULTS_FILE", "SUPPORTED_PIPELINES", "default_model_path", "load_pipeline",
           "recommended_guidance_scale"]

SUPPORTED_PIPELINES = (StableDiffusionPipeline, StableDiffusionXLPipeline)
# diffusers renamed `torch_dtype` to `dtype` (the old name warns); older releases know only `torch_dtype`
_DTYPE_KWARG = "dtype" if hasattr(importlib.import_module("diffusers.utils.deprecation_utils"), "_resolve_dtype") else "torch_dtype"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def default_model_path() -> Path | None:
    """The embedded default pipeline shipped with the package, or None when it is not installed."""
    path = BUNDLE_DIR / "pipeline"
    return path if (path / "model_index.json").is_file() else None


MODEL_DEFAULTS_FILE = "promptlift.json"  # beside model_index.json; diffusers ignores it
FALLBACK_GUIDANCE_SCALE = 7.5  # diffusers' default for Stable Diffusion


def recommended_guidance_scale(model: str | Path | None) -> float:
    """The guidance scale a pipeline folder recommends in its promptlift.json (the embedded model records the
    scale measured best for it), else diffusers' 7.5."""
    folder = Path(model).expanduser() if model is not None else default_model_path()
    defaults = folder / MODEL_DEFAULTS_FILE if folder is not None else None
    if defaults is not None and defaults.is_file():
        return float(json.loads(defaults.read_text()).get("guidance_scale", FALLBACK_GUIDANCE_SCALE))
    return FALLBACK_GUIDANCE_SCALE


def _check_model_source(source: str) -> None:
    """Raise a clear error for a local path that cannot be a diffusers pipeline folder."""
    path = Path(source).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ValueError(
                f"`model` {source!r} is a file, not a diffusers pipeline folder. Pass a folder holding "
                "model_index.json (a single .safetensors/.ckpt checkpoint must first be converted with "
                "diffusers' `from_single_file(...).save_pretrained(DIR)`)."
            )
        if not (path / "model_index.json").is_file():
            raise ValueError(
                f"`model` {source!r} is not a diffusers pipeline folder (no model_index.json in it). "
                "Pass the folder written by `save_pretrained`, or a hub id such as "
                "'stable-diffusion-v1-5/stable-diffusion-v1-5'."
            )
    elif not _HUB_ID.match(source):
        raise ValueError(
            f"`model` {source!r} does not exist and is not a hub id. Pass a local diffusers pipeline "
            "folder or a hub id of the form 'owner/name'."
        )


def load_pipeline(
    pretrained_model_name_or_path: str | Path | None = None,
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = "auto",
    lifts: Sequence[Lift] = (),
    **from_pretrained_kwargs,
) -> DiffusionPipeline:
    """Load a Stable Diffusion 1.x / 2.x / SDXL pipeline from a hub id or a local folder.

    Args:
        pretrained_model_name_or_path: hub id or local folder; None means the embedded default.
        device: where to run; default CUDA when present, else MPS, else CPU.
        dtype: "auto" (fp32 on CPU, fp16 on GPU), a dtype name, or a torch dtype.
        lifts: lifts whose component swaps are applied after loading (see `load_lifts`).
        **from_pretrained_kwargs: passed to `DiffusionPipeline.from_pretrained` (e.g. `variant`).

    v-prediction (SD 2.x 768) needs nothing special: the scheduler config carries `prediction_type`.
    """
    if pretrained_model_name_or_path is None:
        pretrained_model_name_or_path = default_model_path()
        if pretrained_model_name_or_path is None:
            raise ValueError(
                "no `model` given and the embedded default bundle is not installed; pass `--model` "
                "with a diffusers pipeline folder or hub id (or build one with `promptlift tiny-pipeline`)."
            )
    source = str(pretrained_model_name_or_path)
    _check_model_source(source)
    device = check_device(device) if device is not None else default_device()
    torch_dtype = resolve_dtype(dtype, device)
    try:
        pipe = DiffusionPipeline.from_pretrained(source, **{_DTYPE_KWARG: torch_dtype}, **from_pretrained_kwargs)
    except (OSError, ValueError) as e:
        raise ValueError(
            f"could not load `model` {source!r}: {e}\nCheck the hub id or folder; offline "
            "(HF_HUB_OFFLINE=1) a hub id loads only from the local cache."
        ) from e
    if not isinstance(pipe, SUPPORTED_PIPELINES):
        names = ", ".join(c.__name__ for c in SUPPORTED_PIPELINES)
        raise ValueError(f"`model` {source!r} is a {type(pipe).__name__}; promptlift supports {names}.")
    pipe.to(device)
    apply_lifts(pipe, lifts)
    return pipe
