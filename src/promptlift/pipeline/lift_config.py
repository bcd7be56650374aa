"""The lift format: every trained lift folder says what it is in `lift_config.json`, and a lift is found by a folder, a
Hugging Face Hub repo id (through huggingface_hub's cache, with its offline mode and tokens) or, for a LoRA, one file.

    {"lift_type": "textcraftor", "format_version": 1, "base_model": {...}, "options": {"alpha": 1.0, "switch_step": 6}}

`lift_type` names the registered lift that reads the folder; `base_model` is the record of the pipeline it was
trained on (`base_model_record`); `options` are the lift's options and the defaults this folder ships with (a
keyword argument given when loading wins). Folders written before the format (no lift_config.json) are recognised by
what they hold and read as they are; `promptlift convert-lift FOLDER` writes their lift_config.json once.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..files import atomic_write_json
from ..registry import load_plugins
from .lift_registry import LIFTS

__all__ = ["FORMAT_VERSION", "LIFT_CONFIG_FILE", "legacy_lift_type", "lift_type_of",
           "read_lift_config", "recorded_options", "resolve_lift_source", "write_lift_config"]

LIFT_CONFIG_FILE = "lift_config.json"
FORMAT_VERSION = 1
LORA_FILE = "pytorch_lora_weights.safetensors"


def read_lift_config(folder: Path) -> dict | None:
    """`folder`/lift_config.json, checked (a newer format version or no `lift_type` is refused by name); None without."""
    path = Path(folder) / LIFT_CONFIG_FILE
    if not path.is_file():
        return None
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{str(path)!r} is not valid JSON ({err}); write it again with `Lift.save_pretrained`.") from None
    if not isinstance(config, dict) or not isinstance(config.get("lift_type"), str):
        raise ValueError(f"{str(path)!r} names no `lift_type`; write it again with `Lift.save_pretrained`.")
    version = config.get("format_version", FORMAT_VERSION)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(f"{str(path)!r} has format_version {version!r}, newer than this promptlift reads "
                         f"({FORMAT_VERSION}); upgrade promptlift.")
    return config


def write_lift_config(folder: Path, lift_type: str, base_model: dict | None, options: dict) -> Path:
    """Write `folder`/lift_config.json (atomically)."""
    from .. import __version__

    return atomic_write_json(Path(folder) / LIFT_CONFIG_FILE, {
        "lift_type": lift_type, "format_version": FORMAT_VERSION, "promptlift_version": __version__,
        "base_model": base_model, "options": options})


# files in which folders written before the format kept some of their lift's defaults
LEGACY_DEFAULTS = ("lift.json", "textcraftor.json")


def recorded_options(lift_type: str, folder: Path) -> dict:
    """The options of lift `lift_type` with the defaults `folder` ships with: the lift's own, over them those its older
    files (lift.json: the SUR-adapter's gate; textcraftor.json: the switch step it was trained for) give."""

    load_plugins()
    options = LIFTS[lift_type].option_defaults()
    for name in LEGACY_DEFAULTS:
        path = Path(folder) / name
        if path.is_file():
            options.update({k: v for k, v in json.loads(path.read_text()).items() if k in options})
    return options


def legacy_lift_type(folder: Path) -> str | None:
    """The lift type of a folder written before lift_config.json, by what it holds; None if it is no known layout.

    A promptlift trainer's output (with base_model.json beside it or in its run folder) is its method's; a bare
    diffusers LoRA folder is a `lora`, a bare `unet/` or `text_encoder/` folder a `unet` or `text-encoder`."""
    folder = Path(folder)
    trained = (folder / "base_model.json").is_file() or (folder.parent / "base_model.json").is_file()
    if (folder / "refiner_config.json").is_file() or (folder / "lm_refiner.json").is_file():
        return "refiner"
    if (folder / "textcraftor.json").is_file():
        return "textcraftor"
    if (folder / "config.json").is_file() and (folder / "model.safetensors").is_file():
        return "sur-adapter"
    if (folder / LORA_FILE).is_file():
        return "quality-tuning" if trained else "lora"
    if (folder / "unet" / "config.json").is_file():
        return "quality-tuning" if trained else "unet"
    if any((folder / name / "config.json").is_file() for name in ("text_encoder", "text_encoder_2")):
        return "textcraftor" if trained else "text-encoder"
    return None


def lift_type_of(folder: Path) -> str:
    """The lift type of a local lift folder: its lift_config.json's, else what its older layout says; refused by name
    when it is neither."""
    config = read_lift_config(folder)
    if config is not None:
        return config["lift_type"]
    found = legacy_lift_type(folder)
    if found is None:
        raise ValueError(f"{str(folder)!r} holds no {LIFT_CONFIG_FILE} and is no older lift layout (a promptlift "
                         f"trainer's output, a diffusers LoRA or a component folder); pass the folder a trainer or "
                         "`Lift.save_pretrained` wrote.")
    return found


def resolve_lift_source(source: str | Path, *, revision: str | None = None, subfolder: str | None = None,
                        cache_dir: str | Path | None = None, local_files_only: bool | None = None,
                        token: str | bool | None = None) -> Path:
    """The local folder (or, for a LoRA, file) of a lift `source`: a path as it is, else a Hub repo id downloaded
    into (or, offline, read from) huggingface_hub's cache. `revision` is a branch, tag or commit; `subfolder` the lift's
    folder inside the repo or local folder."""
    path = Path(source).expanduser()
    if path.exists():
        found = path / subfolder if subfolder else path
        if not found.exists():
            raise ValueError(f"{str(path)!r} has no subfolder {subfolder!r}; pass the folder that holds the lift.")
        return found
    text = str(source)
    if text.startswith((".", "/", "~")) or text.count("/") != 1 or text.endswith(".safetensors"):
        raise ValueError(f"lift source {text!r} does not exist, and is no Hugging Face Hub repo id (user/name); pass "
                         "the path of the lift's weights or a repo id.")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError,
                                        RevisionNotFoundError)

    try:
        folder = Path(snapshot_download(text, revision=revision, cache_dir=cache_dir, token=token,
                                        local_files_only=bool(local_files_only),
                                        allow_patterns=[f"{subfolder}/*", f"{subfolder}/**"] if subfolder else None))
    except LocalEntryNotFoundError:
        raise ValueError(f"lift {text!r}{f' at revision {revision!r}' if revision else ''} is not in the Hugging Face "
                         "cache, and the Hub cannot be reached (offline: HF_HUB_OFFLINE=1 or local_files_only); "
                         f"download it once online (`hf download {text}`) or pass a local folder.") from None
    except (RepositoryNotFoundError, GatedRepoError) as err:
        raise ValueError(f"lift {text!r}: no such Hub repo, or it is private or gated ({type(err).__name__}); check "
                         "the id, or log in (`hf auth login`) or pass `token`.") from None
    except RevisionNotFoundError:
        raise ValueError(f"lift {text!r} has no revision {revision!r}; pass a branch, tag or commit it has.") from None
    found = folder / subfolder if subfolder else folder
    if not found.is_dir():
        raise ValueError(f"lift {text!r} has no subfolder {subfolder!r}; pass the folder in the repo that holds it.")
    return found


def folder_options(name: str, path: Path | None, where: str) -> dict:
    """The option defaults lift folder `path` records for lift `name`: its lift_config.json's (a folder of another
    lift is refused, as `where` names it), else what the older files of a folder written before the format say."""
    if path is None or not path.is_dir():
        return {}
    config = read_lift_config(path)
    if config is None:
        return recorded_options(name, path)
    if config["lift_type"] != name:
        raise ValueError(f"{where}: {str(path)!r} is a {config['lift_type']!r} lift, not {name!r}; pass "
                         f"`--lift {config['lift_type']}={path}`.")
    return dict(config.get("options") or {})
