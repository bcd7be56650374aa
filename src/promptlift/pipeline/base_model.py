"""Which base model a trained output belongs to: every trainer writes `base_model.json` beside its weights, and a lift
is checked against the pipeline it is applied to before any of it is applied."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Sequence

import torch

from ..utils import atomic_write_json

__all__ = ["BASE_MODEL_FILE", "EMBEDDED_MODEL_NAME", "base_model_record", "check_fits", "is_embedded_model",
           "model_name", "read_base_model", "text_encoder_fingerprint", "write_base_model"]

BASE_MODEL_FILE = "base_model.json"
EMBEDDED_MODEL_NAME = "embedded-default"  # how records and sidecars name the embedded model (its path differs per install)
logger = logging.getLogger(__name__)


def is_embedded_model(model) -> bool:
    """True for None (the default), the embedded model's folder, or a pipeline loaded from it."""
    from ..judges.bundle import is_embedded_source

    return is_embedded_source(getattr(model, "name_or_path", model))


def model_name(pipe) -> str:
    """The id or path a pipeline was loaded from (`EMBEDDED_MODEL_NAME` for the embedded model)."""
    return EMBEDDED_MODEL_NAME if is_embedded_model(pipe) else str(getattr(pipe, "name_or_path", None) or "unknown")


def text_encoder_fingerprint(module: torch.nn.Module, samples: int = 256) -> str:
    """A content hash of a text encoder (or any module), the same in fp32 and fp16: every tensor's name, shape and an
    evenly strided sample of its values rounded to fp16 (reading every weight of SDXL's encoders would take seconds).
    LoRA layers a trainer added are left out: the fingerprint is of the base weights."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        if "lora_" in name:
            continue
        name = name.replace(".base_layer.", ".")  # peft's wrapper around an adapted layer
        flat = tensor.detach().reshape(-1)
        sample = flat[:: max(1, flat.numel() // samples)][:samples].to("cpu", torch.float32).to(torch.float16)
        digest.update(f"{name}:{tuple(tensor.shape)}".encode())
        digest.update(sample.numpy().tobytes())
    return digest.hexdigest()[:16]


def _widths(pipe) -> dict:
    encoders = [getattr(pipe, n, None) for n in ("text_encoder", "text_encoder_2")]
    return {
        "text_embedding_dims": [e.config.hidden_size for e in encoders if e is not None],
        "cross_attention_dim": pipe.unet.config.cross_attention_dim,
    }


def _encoders_fingerprint(pipe) -> str:
    """The fingerprint of the pipeline's own text encoders (those before any lift swapped them)."""
    from .lifted import own_component

    encoders = [own_component(pipe, n) for n in ("text_encoder", "text_encoder_2")]
    return "-".join(text_encoder_fingerprint(e) for e in encoders if e is not None)


def base_model_record(pipe, pretrained_model_name_or_path=None) -> dict:
    """What a trained output records of the pipeline it was trained on (`base_model.json`)."""
    source = pretrained_model_name_or_path if pretrained_model_name_or_path is not None else getattr(pipe, "name_or_path", None)
    return {
        "pretrained_model_name_or_path": EMBEDDED_MODEL_NAME if is_embedded_model(source) else str(source),
        "pipeline_class": type(pipe).__name__,
        **_widths(pipe),
        "text_encoder_fingerprint": _encoders_fingerprint(pipe),
    }


def write_base_model(folder: Path, record: dict) -> None:
    atomic_write_json(Path(folder) / BASE_MODEL_FILE, record)


def read_base_model(folder: Path | None) -> dict | None:
    """The base model record of a lift folder: its lift_config.json's, else the base_model.json in it or in the run
    folder around it (best/, final/), if any."""
    from .lift_config import read_lift_config

    if folder is None or not Path(folder).is_dir():
        return None
    config = read_lift_config(folder)
    if config is not None and config.get("base_model"):
        return config["base_model"]
    for candidate in (Path(folder) / BASE_MODEL_FILE, Path(folder).parent / BASE_MODEL_FILE):
        if candidate.is_file():
            return json.loads(candidate.read_text())
    return None


def check_fits(pipe, folders: Sequence[tuple[str, Path]]) -> None:
    """For each (lift name, weights folder): refuse weights trained on a model of other widths than `pipe`'s, in one
    line naming both models and the fix; warn when the widths fit but the text encoder is another one's (a fine-tune
    of the same architecture). The pipeline's fingerprint is taken once, and only if a record has one."""
    here, fingerprint = _widths(pipe), None
    for lift_name, folder in folders:
        record = read_base_model(folder)
        if record is None:
            continue
        theirs = {key: record.get(key) for key in here}
        if theirs != here or record.get("pipeline_class", type(pipe).__name__) != type(pipe).__name__:
            raise ValueError(
                f"lift {lift_name!r}: {str(folder)!r} was trained on {record.get('pretrained_model_name_or_path')} "
                f"({record.get('pipeline_class')}, text width {theirs['text_embedding_dims']}, cross-attention "
                f"{theirs['cross_attention_dim']}), not on this {model_name(pipe)} ({type(pipe).__name__}, text width "
                f"{here['text_embedding_dims']}, cross-attention {here['cross_attention_dim']}); train it on this "
                f"model: promptlift train {lift_name} --model {model_name(pipe)}."
            )
        if record.get("text_encoder_fingerprint") is None:
            continue
        fingerprint = fingerprint or _encoders_fingerprint(pipe)
        if record["text_encoder_fingerprint"] != fingerprint:
            logger.warning("lift %r: %s was trained on %s, whose text encoder differs from this %s's; it fits, but "
                           "expect other results than on its own base model.", lift_name, folder,
                           record.get("pretrained_model_name_or_path"), model_name(pipe))
