"""Devices and dtypes: which one a run uses, refused with the fix when this machine cannot, and the launch's processes."""

from __future__ import annotations

import os

import torch

__all__ = ["check_device", "default_device", "default_dtype", "distributed_state", "launched_on_cpus", "resolve_dtype"]


def check_device(device: str | torch.device) -> torch.device:
    """`device` as a torch device, refused with the fix when this machine or torch build cannot run on it."""
    try:
        device = torch.device(device)
    except RuntimeError:
        raise ValueError(f"`device` {device!r} is not a device name; use cpu, cuda, cuda:1 or mps.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"`device` {str(device)!r} asked for, but this torch build or machine has no CUDA; use "
                         "--device cpu (or install a CUDA build of torch).")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"`device` {str(device)!r} asked for, but MPS is not available here; use --device cpu.")
    return device


def default_device() -> torch.device:
    """CUDA when present, then Apple MPS, else CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def launched_on_cpus() -> bool:
    """True when the processes of a launch run on CPUs: `ACCELERATE_USE_CPU` is set, or a multi-process launch
    (`accelerate launch`, `torchrun`) finds no CUDA. accelerate must then be told, or each process would be its own
    rank 0 instead of joining a gloo process group."""
    if os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes"):
        return True
    launched = int(os.environ.get("LOCAL_RANK", -1)) != -1 or int(os.environ.get("WORLD_SIZE", 1)) > 1
    return launched and not torch.cuda.is_available()


def distributed_state():
    """accelerate's `PartialState` of this launch (one process, or one per rank under `accelerate launch` / `torchrun`,
    with NCCL on GPUs and gloo on CPUs)."""
    from accelerate import PartialState

    return PartialState(cpu=launched_on_cpus())


def default_dtype(device: torch.device) -> torch.dtype:
    """fp32 on CPU; fp16 on CUDA and MPS (the Stable Diffusion inference convention)."""
    return torch.float32 if device.type == "cpu" else torch.float16


_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """`"auto"`/None -> the device's default; a name -> the torch dtype; half precision on CPU is refused."""
    if dtype is None or dtype == "auto":
        return default_dtype(device)
    if isinstance(dtype, str):
        if dtype not in _DTYPES:
            raise ValueError(f"`dtype` must be one of {['auto', *_DTYPES]}, got {dtype!r}.")
        dtype = _DTYPES[dtype]
    if device.type == "cpu" and dtype == torch.float16:
        raise ValueError("`dtype` float16 is not supported on CPU; use float32 (or bfloat16).")
    return dtype
