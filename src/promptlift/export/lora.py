"""`promptlift export lora`: a trained output as one kohya-format LoRA file that A1111, ComfyUI and diffusers load."""

from __future__ import annotations

import json
from pathlib import Path

from ..files import atomic_path, atomic_write_text
from ..pipeline.lift_config import LORA_FILE
from .kohya import Extraction, diffusers_lora_to_kohya, extract_lora, read_diffusers_lora
from .config import ExportLoraConfig

__all__ = ["ExportLoraConfig", "export_lora"]

_COMPONENTS = ("unet", "text_encoder", "text_encoder_2")


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
