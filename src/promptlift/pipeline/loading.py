"""Load any diffusers Stable Diffusion pipeline (hub id, local folder, or the embedded default)."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from typing import Sequence

import torch
from diffusers import DiffusionPipeline, StableDiffusionPipeline, StableDiffusionXLPipeline

from ..profiles import MODEL_DEFAULTS_FILE, embedded_model, recommended_guidance_scale
from ..devices import check_device, default_device, resolve_dtype
from .contract import Lift
from .lifted import lift

__all__ = ["CHECKPOINT_SUFFIXES", "MODEL_DEFAULTS_FILE", "SUPPORTED_PIPELINES", "default_model_path", "load_pipeline",
           "checkpoint_shapes", "make_scheduler", "recommended_guidance_scale", "single_file_class"]

SUPPORTED_PIPELINES = (StableDiffusionPipeline, StableDiffusionXLPipeline)
# diffusers renamed `torch_dtype` to `dtype` (the old name warns); older releases know only `torch_dtype`
_DTYPE_KWARG = "dtype" if hasattr(importlib.import_module("diffusers.utils.deprecation_utils"), "_resolve_dtype") else "torch_dtype"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def default_model_path() -> Path | None:
    """The embedded default pipeline a plug-in ships (promptlift's own: the world's model), or None when none is
    installed."""
    embedded = embedded_model()
    return embedded.pipeline if embedded is not None else None


CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")


def _check_model_source(source: str) -> None:
    """Raise a clear error for a local path that cannot be a pipeline folder or a single-file checkpoint."""
    path = Path(source).expanduser()
    if path.exists():
        if path.is_file():
            if path.suffix.lower() not in CHECKPOINT_SUFFIXES:
                raise ValueError(f"`model` {source!r} is a file but not a checkpoint (expected one of "
                                 f"{', '.join(CHECKPOINT_SUFFIXES)}); pass a single-file checkpoint or a diffusers folder.")
        elif not (path / "model_index.json").is_file():
            raise ValueError(
                f"`model` {source!r} is not a diffusers pipeline folder (no model_index.json in it). "
                "Pass the folder written by `save_pretrained`, a single-file checkpoint (.safetensors), or a hub id "
                "such as 'stable-diffusion-v1-5/stable-diffusion-v1-5'."
            )
    elif not _HUB_ID.match(source):
        raise ValueError(
            f"`model` {source!r} does not exist and is not a hub id. Pass a local diffusers pipeline "
            "folder, a single-file checkpoint, or a hub id of the form 'owner/name'."
        )


def load_pipeline(
    pretrained_model_name_or_path: str | Path | None = None,
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = "auto",
    lifts: Sequence[Lift] = (),
    scheduler: str | None = None,
    cpu_offload: bool = False,
    config: str | Path | None = None,
    **from_pretrained_kwargs,
) -> DiffusionPipeline:
    """Load a Stable Diffusion 1.x / 2.x / SDXL pipeline from a hub id, a local folder or a single-file checkpoint.

    Args:
        pretrained_model_name_or_path: hub id, local diffusers folder, or single-file checkpoint (.safetensors or
            .ckpt, as A1111 and ComfyUI use); None means the embedded default.
        device: where to run; default CUDA when present, else MPS, else CPU.
        dtype: "auto" (fp32 on CPU, fp16 on GPU), a dtype name, or a torch dtype.
        lifts: Lift objects applied with `promptlift.lift` (not reversible); `pipe(prompt)` then generates through them.
        scheduler: a diffusers scheduler class name (e.g. "DPMSolverMultistepScheduler") made from the model's
            scheduler config; default: the model's own.
        cpu_offload: diffusers' model CPU offload (each model on the GPU only while it runs); needs a GPU.
        config: for a single file, a diffusers folder or hub id with the components' configs of the same
            architecture (offline, a local folder); default: diffusers' reference config for the architecture.
        **from_pretrained_kwargs: passed to `from_pretrained` / `from_single_file` (e.g. `variant`, `revision`).

    v-prediction (SD 2.x 768) needs nothing special: the scheduler config carries `prediction_type`.

        >>> import promptlift
        >>> pipe = promptlift.load_pipeline()         # the embedded model; or a hub id, a folder, a .safetensors file
        >>> type(pipe).__name__
        'StableDiffusionPipeline'
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
    if cpu_offload and device.type != "cuda":
        raise ValueError(f"`cpu_offload` moves each model to the GPU while it runs, but the device is {device.type}; "
                         "drop --cpu_offload (or run on a CUDA machine).")
    torch_dtype = resolve_dtype(dtype, device)
    kwargs = {_DTYPE_KWARG: torch_dtype, **{k: v for k, v in from_pretrained_kwargs.items() if v is not None}}
    try:
        if Path(source).expanduser().is_file():
            pipe = _load_single_file(Path(source).expanduser(), config, kwargs)
        else:
            pipe = DiffusionPipeline.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as e:
        if str(e).startswith("`model`"):
            raise
        raise ValueError(
            f"could not load `model` {source!r}: {e}\nCheck the hub id, folder or file; offline "
            "(HF_HUB_OFFLINE=1) a hub id loads only from the local cache."
        ) from e
    if type(pipe) not in SUPPORTED_PIPELINES:
        names = ", ".join(c.__name__ for c in SUPPORTED_PIPELINES)
        raise ValueError(f"`model` {source!r} is a {type(pipe).__name__}; promptlift supports {names}.")
    if scheduler is not None:
        pipe.scheduler = make_scheduler(pipe, scheduler)
    if cpu_offload:
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to(device)
    if lifts:
        lift(pipe, list(lifts), reversible=False)
    return pipe


def make_scheduler(pipe: DiffusionPipeline, name: str):
    """The diffusers scheduler class `name`, made from `pipe`'s scheduler config; one the pipeline cannot use is refused."""
    import diffusers

    compatible = {c.__name__: c for c in [type(pipe.scheduler), *pipe.scheduler.compatibles]}
    if name not in compatible:
        kind = "is not a diffusers scheduler" if not hasattr(diffusers, name) else "does not fit this pipeline"
        raise ValueError(f"`scheduler` {name!r} {kind}; choose one of: {', '.join(sorted(compatible))}.")
    return compatible[name].from_config(pipe.scheduler.config)


# Keys of the original (CompVis / A1111 / ComfyUI) single-file layout that tell the architecture
_UNET_KEY = "model.diffusion_model.input_blocks.0.0.weight"
_ARCH_KEYS = (("conditioner.embedders.", StableDiffusionXLPipeline), ("cond_stage_model.", StableDiffusionPipeline))


def checkpoint_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """{key: shape} of a single-file checkpoint: a .safetensors file's header only (diffusers then reads the weights
    once); a pickled .ckpt has to be loaded for it."""
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), "pt") as f:
                return {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}
        from diffusers.loaders.single_file_utils import load_single_file_checkpoint

        return {key: tuple(value.shape) for key, value in load_single_file_checkpoint(str(path)).items()
                if hasattr(value, "shape")}
    except Exception as e:  # safetensors, pickle and zip readers each raise their own
        raise ValueError(f"`model` {str(path)!r} could not be read as a checkpoint ({type(e).__name__}: {e}); pass a "
                         ".safetensors or .ckpt file of a Stable Diffusion model.") from None


def single_file_class(checkpoint: dict, path: Path) -> type:
    """The pipeline class of an original-layout checkpoint, from its keys (`checkpoint`: keys to weights or to
    shapes); refused when it is not SD 1.x/2.x/SDXL."""
    if _UNET_KEY not in checkpoint:
        raise ValueError(f"`model` {str(path)!r} holds no Stable Diffusion UNet (no {_UNET_KEY!r}); pass a single-file "
                         "SD 1.x, 2.x or SDXL checkpoint as A1111 and ComfyUI load them.")
    for prefix, cls in _ARCH_KEYS:
        if any(key.startswith(prefix) for key in checkpoint):
            return cls
    raise ValueError(f"`model` {str(path)!r} has a UNet but no text encoder (no cond_stage_model.* or conditioner.* "
                     "keys); pass a whole checkpoint.")


def _cross_attention_dim(shapes: dict[str, tuple[int, ...]]) -> int | None:
    widths = [v[1] for k, v in shapes.items() if k.startswith("model.diffusion_model.") and k.endswith("attn2.to_k.weight")]
    return widths[0] if widths else None


def _load_single_file(path: Path, config: str | Path | None, kwargs: dict) -> DiffusionPipeline:
    """A single-file checkpoint through diffusers' `from_single_file`, its components' configs from `config`."""
    shapes = checkpoint_shapes(path)
    cls = single_file_class(shapes, path)
    if config is not None and Path(config).expanduser().is_dir():
        _check_single_file_config(path, shapes, cls, Path(config).expanduser())
    elif config is None and _offline():
        raise ValueError(f"`model` {str(path)!r} is a single file, whose components' configs diffusers fetches from "
                         "the hub, and the hub is offline here; pass `--model_config DIR` (a diffusers folder of the "
                         f"same architecture, {cls.__name__}, e.g. one `save_pretrained` wrote).")
    kwargs = {**kwargs, "local_files_only": _offline() or kwargs.get("local_files_only", False)}
    try:
        pipe = cls.from_single_file(str(path), **({"config": str(config)} if config is not None else {}), **kwargs)
    except Exception as err:
        if config is None and _unreachable(err):
            raise ValueError(f"`model` {str(path)!r} is a single file, whose components' configs diffusers fetches "
                             "from the hub, and the hub cannot be reached; pass `--model_config DIR` (a diffusers "
                             f"folder of the same architecture, {cls.__name__}, e.g. one `save_pretrained` wrote).") from None
        raise
    pipe.register_to_config(_name_or_path=str(path.resolve()))  # the file it was loaded from (diffusers keeps none)
    return pipe


def _unreachable(err: BaseException | None) -> bool:
    """Whether `err` (or an error it was raised from) says the hub could not be reached."""
    while err is not None:
        if any(word in type(err).__name__ for word in ("Connect", "Timeout", "LocalEntryNotFound", "OfflineMode")):
            return True
        err = err.__cause__ or err.__context__
    return False


def _check_single_file_config(path: Path, shapes: dict[str, tuple[int, ...]], cls: type, config: Path) -> None:
    """The config folder must describe the checkpoint's architecture: its pipeline class and cross-attention width."""
    index = config / "model_index.json"
    if not index.is_file():
        raise ValueError(f"`model_config` {str(config)!r} is not a diffusers folder (no model_index.json); pass the "
                         "folder `save_pretrained` wrote for a model of this architecture.")
    theirs = json.loads(index.read_text()).get("_class_name")
    width = json.loads((config / "unet" / "config.json").read_text()).get("cross_attention_dim") \
        if (config / "unet" / "config.json").is_file() else None
    mine = _cross_attention_dim(shapes)
    if theirs != cls.__name__ or (mine is not None and width is not None and mine != width):
        raise ValueError(f"`model` {str(path)!r} is a {cls.__name__} with cross-attention width {mine}, but "
                         f"`model_config` {str(config)!r} describes a {theirs} with {width}; pass the config folder of "
                         "the checkpoint's own architecture.")


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)
