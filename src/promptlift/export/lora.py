"""`promptlift export lora`: a trained output as one kohya-format LoRA file that A1111, ComfyUI and diffusers load."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from ..files import atomic_path, atomic_write_text
from ..pipeline.lift_config import LORA_FILE
from .kohya import Extraction, diffusers_lora_to_kohya, extract_lora, read_diffusers_lora
from .config import ExportLoraConfig

__all__ = ["ExportLoraConfig", "export_lora"]

_COMPONENTS = ("unet", "text_encoder", "text_encoder_2")


def _base_model(cfg: ExportLoraConfig) -> str | None:
    """The base model `cfg.source` changed: `cfg.model`, else the one its record names (None: the embedded model)."""
    from ..pipeline import EMBEDDED_MODEL_NAME, read_base_model

    if cfg.model is not None:
        return cfg.model
    name = (read_base_model(Path(cfg.source)) or {}).get("pretrained_model_name_or_path")
    if name is None:
        raise ValueError(f"`source` {str(cfg.source)!r} holds full weights but no base model record (lift_config.json "
                         "or base_model.json); pass --model with the base model they were trained from.")
    return None if name == EMBEDDED_MODEL_NAME else name


def _base_pipeline(cfg: ExportLoraConfig):
    """The pipeline the full weights in `cfg.source` changed."""
    from ..pipeline import load_pipeline
    from ..pipeline.base_model import record_file

    name = _base_model(cfg)
    try:
        return load_pipeline(name, device="cpu", dtype="float32", config=cfg.model_config)
    except ValueError as err:
        if cfg.model is not None:
            raise
        raise ValueError(f"the base model {name!r} that {record_file(Path(cfg.source))} names could not be loaded "
                         f"({str(err).splitlines()[0]}); pass --model (and, for a single file, --model_config) to "
                         "name it here.") from None


def _base_unet_config(cfg: ExportLoraConfig) -> dict:
    """The base model's UNet config (its blocks name an SDXL LoRA's kohya keys): read from its folder, Hub id or
    --model_config alone, the whole pipeline loaded only for a single file without one."""
    from diffusers import UNet2DConditionModel

    name = _base_model(cfg)
    folder = cfg.model_config or name
    if folder is None or Path(folder).is_file():
        return dict(_base_pipeline(cfg).unet.config)
    return dict(UNet2DConditionModel.load_config(folder, subfolder="unet"))


def export_lora(cfg: ExportLoraConfig) -> tuple[Path, str]:
    """Write the kohya LoRA file; returns (its path, a line on what it carries). A LoRA is converted as it is; full
    weights are extracted by SVD, which carries linear layers only: the line says how much of the whole change the
    file keeps and, on `cfg.num_check_prompts` prompts, how far its images are from the lift's (a warning above 1/255,
    naming the lossless routes)."""
    from diffusers import StableDiffusionXLPipeline

    from ..pipeline import load_component_strict, read_base_model

    source = Path(cfg.source)
    record = read_base_model(source) or {}
    extraction = None
    if (source / LORA_FILE).is_file():
        state, alphas = read_diffusers_lora(source / LORA_FILE)
        sdxl = record.get("pipeline_class") == StableDiffusionXLPipeline.__name__ or "text_encoder_2" in alphas
        note = "converted from the diffusers LoRA as it is"
        unet_config = _base_unet_config(cfg) if sdxl and any(k.startswith("unet.") for k in state) else None
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
        unet_config = dict(pipe.unet.config)
    kohya = diffusers_lora_to_kohya(state, alphas, sdxl, unet_config)
    if extraction is not None and cfg.num_check_prompts > 0:
        note += "; " + _image_check(pipe, cfg, kohya)
    from safetensors.torch import save_file

    with atomic_path(Path(cfg.output), suffix=".safetensors") as tmp:
        save_file({k: v.contiguous() for k, v in kohya.items()}, str(tmp), metadata=_metadata(cfg, kohya, record, sdxl))
    atomic_write_text(Path(cfg.output).with_suffix(".md"), _card(cfg, record, note))
    return Path(cfg.output), note


CHECK_PROMPTS = ("a couple of boats as the sun goes down", "a red apple on a wooden table",
                 "a lighthouse on a rocky coast at night", "two cats sleeping on a sofa")


def _image_check(pipe, cfg: ExportLoraConfig, kohya: dict) -> str:
    """How far the LoRA's images are from the lift's own (the same prompts and seeds, `cfg.check_steps` steps, the
    lift applied at every step), as a line for the note; warns above 1/255."""
    from ..pipeline import seeded_images
    from ..pipeline.lift_config import lift_type_of
    from ..pipeline.lifted import lift, unlift

    prompts = list(CHECK_PROMPTS[: cfg.num_check_prompts])
    seeds = list(range(len(prompts)))
    kind = lift_type_of(Path(cfg.source))
    options = ["textcraftor.switch_step=0"] if kind == "textcraftor" else []  # the encoder itself, as the LoRA is
    kwargs = dict(num_inference_steps=cfg.check_steps)
    lift(pipe, [f"{kind}={cfg.source}"], options)
    try:
        want = seeded_images(pipe, prompts, seeds, **kwargs)
    finally:
        unlift(pipe)
    pipe.load_lora_weights({k: v.clone() for k, v in kohya.items()}, adapter_name="export-check")
    try:
        got = seeded_images(pipe, prompts, seeds, **kwargs)
    finally:
        pipe.delete_adapters("export-check")
    diff = (got.double() - want.double()).abs() * 255
    line = (f"its images differ from the lift's by up to {diff.max():.1f}/255 (mean {diff.mean():.2f}) on "
            f"{len(prompts)} prompts, {cfg.check_steps} steps")
    if diff.max() > 1:
        warnings.warn(f"`promptlift export lora`: {line}, more than 1/255: the file drops what a LoRA cannot carry. "
                      f"For the lift's own weights write a checkpoint (`promptlift export checkpoint OUT --model BASE "
                      f"--lift {kind}={cfg.source}`) or, in ComfyUI, use the Apply TextCraftor node on the folder.",
                      stacklevel=2)
    return line


def _metadata(cfg: ExportLoraConfig, kohya: dict, record: dict, sdxl: bool) -> dict[str, str]:
    """The metadata fields kohya's sd-scripts writes that LoRA readers show (network, rank, alpha, base model), and
    promptlift's own."""
    downs = {k: v for k, v in kohya.items() if k.endswith("lora_down.weight")}
    alphas = {float(v) for k, v in kohya.items() if k.endswith(".alpha")}
    v2 = record.get("pipeline_class") != "StableDiffusionXLPipeline" and 1024 in (record.get("text_embedding_dims") or [])
    return {"ss_network_module": "networks.lora", "ss_network_dim": str(max(v.shape[0] for v in downs.values())),
            "ss_network_alpha": f"{next(iter(alphas)):g}" if len(alphas) == 1 else "Dynamic",
            "ss_base_model_version": "sdxl_base_v1-0" if sdxl else "sd_v2" if v2 else "sd_v1",
            "ss_v2": str(v2), "ss_output_name": Path(cfg.output).stem,
            "ss_network_args": "{}",
            "promptlift_source": str(cfg.source), "promptlift_base_model": json.dumps(record)}


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
