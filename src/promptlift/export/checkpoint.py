"""`promptlift export checkpoint`: a model with its weight lifts merged, as one single-file checkpoint (A1111, ComfyUI,
diffusers' `from_single_file`)."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..files import atomic_path, atomic_write_text

__all__ = ["ExportCheckpointConfig", "export_checkpoint"]

# Lifts whose whole change lives in the weights (a single file can carry them); the others act at generation time
WEIGHT_LIFTS = ("quality-tuning", "textcraftor", "lora", "unet", "text-encoder")


@dataclass
class ExportCheckpointConfig:
    """Write a model with quality-tuning merged and TextCraftor's encoder in place as one single-file checkpoint."""

    output: Path | None = field(default=None, metadata={"help": "The .safetensors file to write."})
    model: str | None = field(default=None, metadata={
        "help": "The base model (diffusers folder, hub id or single file); default: the embedded model."})
    model_config: str | None = field(default=None, metadata={"help": "For a single-file --model: its config folder."})
    lift: list[str] = field(default_factory=list, metadata={
        "help": "A lift to merge, as NAME[=PATH] (quality-tuning, textcraftor, lora, unet, text-encoder); repeatable."})
    lift_option: list[str] = field(default_factory=list, metadata={"help": "Option of a lift, as LIFT.KEY=VALUE; repeatable."})
    dtype: Literal["float16", "bfloat16", "float32"] | None = field(default=None, metadata={
        "help": "Dtype of the weights written; default: that of the file --overwrite replaces, else float16 (the size "
                "checkpoints are shared at)."})
    overwrite: bool = field(default=False, metadata={"help": "Replace an existing output file."})

    def __post_init__(self):
        if self.output is None or Path(self.output).suffix != ".safetensors":
            raise ValueError(f"`output` {str(self.output)!r} must be a .safetensors file to write.")
        if Path(self.output).exists() and not self.overwrite:
            raise ValueError(f"`output` {str(self.output)!r} exists; pass another path, or --overwrite to replace it.")
        existing = safetensors_dtype(Path(self.output)) if Path(self.output).is_file() else None
        if self.dtype is None:
            self.dtype = existing or "float16"
        elif existing is not None and existing != self.dtype:
            warnings.warn(f"`output` {str(self.output)!r} holds {existing} weights; it is rewritten as {self.dtype}, as "
                          f"--dtype asks (leave --dtype out to keep {existing}).", stacklevel=2)
        for spec in self.lift:
            name = spec.partition("=")[0].strip()
            if name not in WEIGHT_LIFTS:
                raise ValueError(f"`--lift {spec}` acts when images are generated (it is not in the weights), so a "
                                 f"checkpoint cannot carry it; merge only {', '.join(WEIGHT_LIFTS)}, and apply "
                                 f"{name} with promptlift (`--lift {name}=...`).")


_SAFETENSORS_DTYPES = {"F16": "float16", "BF16": "bfloat16", "F32": "float32"}


def safetensors_dtype(path: Path) -> str | None:
    """The dtype most of a .safetensors file's floating-point values are in, read from its header (no weights are
    loaded); None for a file that is no readable safetensors file."""
    try:
        with open(path, "rb") as f:
            header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
    except (OSError, ValueError):
        return None
    sizes: dict[str, int] = {}
    for key, entry in header.items():
        if key != "__metadata__" and entry.get("dtype") in _SAFETENSORS_DTYPES:
            start, end = entry["data_offsets"]
            sizes[entry["dtype"]] = sizes.get(entry["dtype"], 0) + end - start
    return _SAFETENSORS_DTYPES[max(sizes, key=sizes.get)] if sizes else None


def export_checkpoint(cfg: ExportCheckpointConfig) -> Path:
    """Write the checkpoint (atomically) and its model card (OUTPUT with .md); returns the checkpoint's path."""
    import torch
    from safetensors.torch import save_file

    from ..pipeline import lift, load_pipeline, model_name, pipeline_lifts
    from .single_file import pipeline_to_original

    pipe = load_pipeline(cfg.model, device="cpu", dtype="float32", config=cfg.model_config)
    if cfg.lift:
        lift(pipe, cfg.lift, cfg.lift_option, reversible=False)
    if any(pipe.get_list_adapters().values()):  # LoRA layers kept unfused (TextCraftor's, `fuse=false`): merged now
        pipe.fuse_lora()
        pipe.unload_lora_weights()
    for each in pipeline_lifts(pipe):
        alpha, switch = getattr(each, "alpha", 1.0), getattr(each, "switch_step", 0)
        if alpha != 1.0 or switch:
            raise ValueError(f"lift {each.name!r} with alpha={alpha}, switch_step={switch} blends encoders while images "
                             "are generated; a checkpoint holds one encoder: export with alpha=1 and switch_step=0.")
    _check_loads_back(pipe)
    dtype = getattr(torch, cfg.dtype)
    state = {k: v.to(dtype) for k, v in pipeline_to_original(pipe).items()}
    with atomic_path(Path(cfg.output), suffix=".safetensors") as tmp:
        save_file(state, str(tmp), metadata={"format": "pt", "promptlift_base_model": model_name(pipe),
                                             "promptlift_lifts": ", ".join(cfg.lift)})
    atomic_write_text(Path(cfg.output).with_suffix(".md"), _card(cfg, model_name(pipe), type(pipe).__name__))
    return Path(cfg.output)


def _check_loads_back(pipe) -> None:
    """Refuse a checkpoint no loader could read back: an SDXL single file tells its two text encoders apart by their
    widths (768 and 1280 in SDXL; diffusers and ComfyUI read an equal-width pair into the wrong slots)."""
    first, second = (getattr(pipe, n, None) for n in ("text_encoder", "text_encoder_2"))
    if first is not None and second is not None and first.config.hidden_size == second.config.hidden_size:
        raise ValueError(f"this SDXL pipeline's two text encoders are both {first.config.hidden_size} wide, so a single "
                         "file of it cannot be loaded back (loaders tell them apart by width); export a pipeline whose "
                         "second encoder is wider than the first, as SDXL's (for `promptlift tiny-pipeline`: "
                         "--text_encoder_2_width 48).")


def _card(cfg: ExportCheckpointConfig, base: str, pipeline_class: str) -> str:
    lifts = "\n".join(f"- `{spec}`" for spec in cfg.lift) or "- none (the base model as it is)"
    return f"""# {Path(cfg.output).name}

A single-file checkpoint ({pipeline_class}, original layout, {cfg.dtype}) written by `promptlift export checkpoint`:
the base model {base} with these lifts merged into its weights:

{lifts}

Load it in A1111 or ComfyUI as any checkpoint of its architecture, or in diffusers:

```python
from diffusers import {pipeline_class}
pipe = {pipeline_class}.from_single_file("{Path(cfg.output).name}")  # offline: config="<a diffusers folder of it>"
```

or with promptlift: `promptlift generate --model {Path(cfg.output).name} "a prompt"`. Lifts that act while images are
generated (the refiner, the SUR-adapter) are not in it: add them with `--lift NAME=PATH`.
"""
