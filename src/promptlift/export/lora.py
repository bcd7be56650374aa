"""`promptlift export lora`: a trained output as one kohya-format LoRA file that A1111, ComfyUI and diffusers load."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..files import atomic_path, atomic_write_text
from ..pipeline.lift_config import LORA_FILE
from .kohya import Extraction, diffusers_lora_to_kohya, extract_lora, read_diffusers_lora

__all__ = ["ExportLoraConfig", "export_lora"]

_COMPONENTS = ("unet", "text_encoder", "text_encoder_2")


@dataclass
class ExportLoraConfig:
    """Write a quality-tuning or TextCraftor output as a kohya/A1111 LoRA file (.safetensors) for A1111 and ComfyUI."""

    source: Path | None = field(default=None, metadata={
        "help": "A trained output folder: a LoRA (pytorch_lora_weights.safetensors), or full weights (text_encoder/, "
                "text_encoder_2/, unet/), which are turned into a LoRA by SVD of their change."})
    output: Path | None = field(default=None, metadata={"help": "The .safetensors file to write."})
    model: str | None = field(default=None, metadata={
        "help": "For full weights: the base model they changed; default: the one their base_model.json names."})
    model_config: str | None = field(default=None, metadata={"help": "For a single-file --model: its config folder."})
    rank: int = field(default=64, metadata={"help": "For full weights: the rank of the extracted LoRA.", "min": 1, "max": 4096})
    overwrite: bool = field(default=False, metadata={"help": "Replace an existing output file."})

    def __post_init__(self):
        if self.source is None or not Path(self.source).is_dir():
            raise ValueError(f"`source` {str(self.source)!r} is not a folder; pass a `promptlift train` output (its "
                             "best/ or final/).")
        if self.output is None or Path(self.output).suffix != ".safetensors":
            raise ValueError(f"`output` {str(self.output)!r} must be a .safetensors file to write.")
        if Path(self.output).exists() and not self.overwrite:
            raise ValueError(f"`output` {str(self.output)!r} exists; pass another path, or --overwrite to replace it.")
        if self.rank < 1:
            raise ValueError(f"`rank` must be >= 1, got {self.rank}.")


def _base_pipeline(cfg: ExportLoraConfig):
    """The pipeline the full weights in `cfg.source` changed."""
    from ..pipeline import EMBEDDED_MODEL_NAME, load_pipeline, read_base_model
    from ..pipeline.base_model import record_file

    if cfg.model is not None:
        return load_pipeline(cfg.model, device="cpu", dtype="float32", config=cfg.model_config)
    record = read_base_model(Path(cfg.source)) or {}
    name = record.get("pretrained_model_name_or_path")
    if name is None:
        raise ValueError(f"`source` {str(cfg.source)!r} holds full weights but no base model record (lift_config.json "
                         "or base_model.json); pass --model with the base model they were trained from.")
    try:
        return load_pipeline(None if name == EMBEDDED_MODEL_NAME else name, device="cpu", dtype="float32",
                             config=cfg.model_config)
    except ValueError as err:
        raise ValueError(f"the base model {name!r} that {record_file(Path(cfg.source))} names could not be loaded "
                         f"({str(err).splitlines()[0]}); pass --model (and, for a single file, --model_config) to "
                         "name it here.") from None


def export_lora(cfg: ExportLoraConfig) -> tuple[Path, str]:
    """Write the kohya LoRA file; returns (its path, a line on what it carries)."""
    from diffusers import StableDiffusionXLPipeline

    from ..pipeline import load_component_strict, read_base_model

    source = Path(cfg.source)
    if (source / LORA_FILE).is_file():
        state, alphas = read_diffusers_lora(source / LORA_FILE)
        record = read_base_model(source) or {}
        sdxl = record.get("pipeline_class") == StableDiffusionXLPipeline.__name__ or "text_encoder_2" in alphas
        note = "converted from the diffusers LoRA as it is"
    else:
        folders = [name for name in _COMPONENTS if (source / name / "config.json").is_file()]
        if not folders:
            raise ValueError(f"`source` {str(source)!r} holds no LoRA ({LORA_FILE}) and no full weights (text_encoder/, "
                             "text_encoder_2/ or unet/); pass a quality-tuning or TextCraftor output.")
        pipe = _base_pipeline(cfg)
        sdxl = isinstance(pipe, StableDiffusionXLPipeline)
        extraction = Extraction()
        for name in folders:
            base = getattr(pipe, name)
            tuned = load_component_strict(type(base), source / name, f"`source` {str(source)!r}")
            extract_lora(name, base, tuned.float(), cfg.rank, extraction)
        state, alphas, note = extraction.state, extraction.alphas, extraction.summary()
    kohya = diffusers_lora_to_kohya(state, alphas, sdxl)
    metadata = {"ss_network_module": "networks.lora", "ss_base_model_version": "sdxl_base_v1-0" if sdxl else "sd_v1",
                "ss_network_dim": str(max(v.shape[0] for k, v in kohya.items() if k.endswith("lora_down.weight"))),
                "promptlift_source": str(source),
                "promptlift_base_model": json.dumps(read_base_model(source) or {})}
    from safetensors.torch import save_file

    with atomic_path(Path(cfg.output), suffix=".safetensors") as tmp:
        save_file({k: v.contiguous() for k, v in kohya.items()}, str(tmp), metadata=metadata)
    atomic_write_text(Path(cfg.output).with_suffix(".md"), _card(cfg, read_base_model(source) or {}, note))
    return Path(cfg.output), note


def _card(cfg: ExportLoraConfig, base: dict, note: str) -> str:
    name = Path(cfg.output).stem
    return f"""# {Path(cfg.output).name}

A kohya-format LoRA (`lora_unet_*` / `lora_te*_*` keys with alphas) written by `promptlift export lora` from
`{cfg.source}`: {note}. Base model: {base.get("pretrained_model_name_or_path", "see the source's base_model.json")}
({base.get("pipeline_class", "?")}); use it on that model.

- A1111: copy it into `models/Lora` and add `<lora:{name}:1>` to the prompt.
- ComfyUI: copy it into `models/loras` and load it with a LoraLoader node.
- diffusers: `pipe.load_lora_weights("{Path(cfg.output).name}")` (diffusers converts the kohya keys).
"""
