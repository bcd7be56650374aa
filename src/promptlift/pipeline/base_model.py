"""Which base model a trained output belongs to: every trainer writes `base_model.json` beside its weights, and a lift
is checked against the pipeline it is applied to before any of it is applied."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from pathlib import Path
from typing import Sequence

import torch

from ..profiles import is_embedded
from ..files import atomic_write_json
from .lift_config import LIFT_CONFIG_FILE, read_lift_config

__all__ = ["BASE_MODEL_FILE", "EMBEDDED_MODEL_NAME", "base_model_record", "check_fits", "file_fingerprint",
           "is_embedded_model", "model_name", "model_source", "own_component", "read_base_model", "record_file",
           "text_encoder_fingerprint", "write_base_model"]

BASE_MODEL_FILE = "base_model.json"
LIFTED_STATE = "_promptlift_state"  # the attribute a lifted pipeline carries (pipeline/lifted.py's state)
EMBEDDED_MODEL_NAME = "embedded-default"  # how records and sidecars name the embedded model (its path differs per install)
logger = logging.getLogger(__name__)


def is_embedded_model(model) -> bool:
    """True for None (the default), or a folder or pipeline loaded from one whose files declare it the embedded model
    (`profiles.is_embedded`; a pipeline that names no source, as a single file loaded with plain diffusers, is not)."""
    return is_embedded(model)


def model_source(pipe) -> str | None:
    """What `--model` takes to load the pipeline again: its hub id, or the absolute path of its folder or single file
    (None for a pipeline that names no source)."""
    source = getattr(pipe, "name_or_path", None)
    if source is None:
        return None
    path = Path(str(source)).expanduser()
    return str(path.resolve()) if path.exists() else str(source)


def model_name(pipe) -> str:
    """How records and messages name a pipeline's model: `EMBEDDED_MODEL_NAME` for the embedded model, a single file
    by its file name and content fingerprint, else the hub id or folder it was loaded from."""
    if is_embedded_model(pipe):
        return EMBEDDED_MODEL_NAME
    source = model_source(pipe)
    if source is None:
        return f"an unnamed {type(pipe).__name__} (loaded without a name or path)"
    if Path(source).is_file():
        return f"{Path(source).name} (file fingerprint {file_fingerprint(source)})"
    return source


@functools.lru_cache(maxsize=32)
def _file_fingerprint(path: str, size: int, mtime: float, samples: int = 16, chunk: int = 1 << 16) -> str:
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        for i in range(samples):
            f.seek(i * max(0, size - chunk) // (samples - 1))
            digest.update(f.read(chunk))
    return digest.hexdigest()[:16]


def file_fingerprint(path: str | Path) -> str:
    """A content hash of a (multi-GB) checkpoint file: its size and 16 evenly spaced 64 KiB chunks, the header first."""
    stat = Path(path).stat()
    return _file_fingerprint(str(Path(path).resolve()), stat.st_size, stat.st_mtime)


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


def own_component(pipe, name: str):
    """The pipeline's own component `name`, as it was before any lift replaced it."""
    state = pipe.__dict__.get(LIFTED_STATE)
    for entry in state.entries.values() if state is not None else ():
        own = entry.swapped.get(name, (None, None))[0] or entry.lift.original_encoders().get(name)
        if own is not None:
            return own
    return getattr(pipe, name, None)


def _encoders_fingerprint(pipe) -> str:
    """The fingerprint of the pipeline's own text encoders (those before any lift swapped them)."""
    encoders = [own_component(pipe, n) for n in ("text_encoder", "text_encoder_2")]
    return "-".join(text_encoder_fingerprint(e) for e in encoders if e is not None)


def base_model_record(pipe, pretrained_model_name_or_path=None) -> dict:
    """What a trained output records of the pipeline it was trained on (`base_model.json`, lift_config.json): its
    source as `--model` takes it again (a hub id, or an absolute path; a single file with its content fingerprint),
    its class, widths and text encoders' fingerprint."""
    source = pretrained_model_name_or_path if pretrained_model_name_or_path is not None else model_source(pipe)
    if source is not None and Path(str(source)).expanduser().exists():
        source = str(Path(str(source)).expanduser().resolve())
    embedded = is_embedded_model(pipe) if pretrained_model_name_or_path is None else is_embedded_model(source)
    record = {"pretrained_model_name_or_path": EMBEDDED_MODEL_NAME if embedded else source}
    if not embedded and source is not None and Path(source).is_file():
        record["file_fingerprint"] = file_fingerprint(source)
    return {**record, "pipeline_class": type(pipe).__name__, **_widths(pipe),
            "text_encoder_fingerprint": _encoders_fingerprint(pipe)}


def write_base_model(folder: Path, record: dict) -> None:
    atomic_write_json(Path(folder) / BASE_MODEL_FILE, record)


def record_file(folder: Path | None) -> Path | None:
    """The file that holds a lift folder's base model record: its lift_config.json, else the base_model.json in it or
    in the run folder around it (best/, final/); None without one."""
    if folder is None or not Path(folder).is_dir():
        return None
    config = read_lift_config(folder)
    if config is not None and config.get("base_model"):
        return Path(folder) / LIFT_CONFIG_FILE
    candidates = (Path(folder) / BASE_MODEL_FILE, Path(folder).parent / BASE_MODEL_FILE)
    return next((c for c in candidates if c.is_file()), None)


def read_base_model(folder: Path | None) -> dict | None:
    """The base model record of a lift folder (see `record_file`), if any."""
    path = record_file(folder)
    if path is None:
        return None
    record = json.loads(path.read_text())
    return record["base_model"] if path.name == LIFT_CONFIG_FILE else record


def check_fits(pipe, folders: Sequence[tuple[str, Path]]) -> None:
    """For each (lift name, weights folder): refuse weights trained on a model of other widths than `pipe`'s, in one
    line naming both models and the fix; warn when the widths fit but the text encoder is another one's (a fine-tune
    of the same architecture). The pipeline's fingerprint is taken once, and only if a record has one."""
    here, fingerprint = _widths(pipe), None
    for lift_name, folder in folders:
        record = read_base_model(folder)
        if record is None:
            continue
        where = record_file(folder)
        theirs = {key: record.get(key) for key in here}
        if theirs != here or record.get("pipeline_class", type(pipe).__name__) != type(pipe).__name__:
            raise ValueError(
                f"lift {lift_name!r}: {str(folder)!r} was trained on {record.get('pretrained_model_name_or_path')} "
                f"({record.get('pipeline_class')}, text width {theirs['text_embedding_dims']}, cross-attention "
                f"{theirs['cross_attention_dim']}), not on this {model_name(pipe)} ({type(pipe).__name__}, text width "
                f"{here['text_embedding_dims']}, cross-attention {here['cross_attention_dim']}); train it on this "
                f"model: promptlift train {lift_name} --model {model_source(pipe) or 'YOUR_MODEL'} (the model it was "
                f"trained on is recorded in {where})."
            )
        if record.get("text_encoder_fingerprint") is None:
            continue
        fingerprint = fingerprint or _encoders_fingerprint(pipe)
        if record["text_encoder_fingerprint"] != fingerprint:
            logger.warning("lift %r: %s was trained on %s, whose text encoder differs from this %s's; it fits, but "
                           "expect other results than on its own base model.", lift_name, folder,
                           record.get("pretrained_model_name_or_path"), model_name(pipe))
