"""The GPU check: on one CUDA card, SD 1.5 at 512 px and SDXL at 1024 px (random full-size weights from the
architectures' configs: no download, no bundle diffusion weights), one step of every trainer in bf16, then 25-step
base and lifted generations in fp16 (the lifts the trainers just wrote), each peak beside `promptlift memory`'s
projection. Writes OUTPUT_DIR/gpu_check.json and gpu_check.md.

    promptlift memory check --output_dir runs/gpu-check          # on a GPU
    promptlift memory check --tiny --output_dir runs/gpu-check   # the same code at tiny size on a CPU

It needs PyTorch and the project's wheels (diffusers, transformers, peft, accelerate and promptlift with its judges and
packaged sentence encoder); tests/test_gpu_check.py runs the tiny version in the default suite so it cannot rot.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from .calibrate import build_data, build_pipeline, method_config

__all__ = ["CheckConfig", "TRAINERS", "check"]

GiB = 2**30
FULL = {"sd15": 512, "sdxl": 1024}  # architecture -> resolution of the check
TINY = {"sd1": 32, "sdxl": 32}
TRAINERS = ("quality-tuning-lora", "sur-adapter", "refiner", "textcraftor-k1")
MEMORY_METHOD = {"quality-tuning-lora": ("quality-tuning", {"use_lora": True}), "sur-adapter": ("sur-adapter", {}),
                 "refiner": ("refiner", {}), "textcraftor-k1": ("textcraftor", {"grad_steps": 1})}


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _reset_peak() -> None:
    import torch

    if _cuda():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def _peak_gib() -> float | None:
    """The step's peak allocated GPU memory (None on a CPU, where the process's memory is not the model's)."""
    import torch

    return torch.cuda.max_memory_allocated() / GiB if _cuda() else None


def _weights(run: Path) -> Path:
    return run / "best" if (run / "best").is_dir() else run / "final"


def check_trainers(arch: str, model: Path, data: Path, resolution: int, root: Path, memory_model: str) -> list[dict]:
    """One step of every trainer; its time, peak and the memory model's projection."""
    from ..memory import MemoryConfig, estimate
    from ..methods import METHODS

    precision = "bf16" if _cuda() else "no"
    rows = []
    for method in TRAINERS:
        name, cfg = method_config(method, model, data, root / arch / method, resolution, 1,
                                  dict(mixed_precision=precision, optimizer="adamw", gradient_checkpointing=True))
        _reset_peak()
        t0 = time.perf_counter()
        METHODS[name].train(cfg)
        seconds, peak = time.perf_counter() - t0, _peak_gib()
        memory_name, options = MEMORY_METHOD[method]
        projected = estimate(MemoryConfig(model=memory_model, method=memory_name, resolution=resolution,
                                          mixed_precision=precision, optimizer="adamw", gpu=[80], **options))["peak_gib"]
        rows.append({"arch": arch, "what": f"train {method}", "resolution": resolution, "seconds": round(seconds, 2),
                     "peak_gib": None if peak is None else round(peak, 2), "projected_gib": projected,
                     "error": None if not peak else round((projected - peak) / peak, 3)})
    return rows


def check_generation(arch: str, model: Path, resolution: int, root: Path) -> list[dict]:
    """25-step base and lifted generations (the lifts the trainers wrote), each timed after a warm-up call."""
    import torch

    from ..pipeline import lift, load_pipeline

    lifts = [f"refiner={_weights(root / arch / 'refiner')}", f"quality-tuning={_weights(root / arch / 'quality-tuning-lora')}",
             f"sur-adapter={_weights(root / arch / 'sur-adapter')}", f"textcraftor={_weights(root / arch / 'textcraftor-k1')}"]
    pipe = load_pipeline(model, dtype="float16" if _cuda() else "float32")
    pipe.set_progress_bar_config(disable=True)
    rows, seconds = [], {}
    for what in ("base", "lifted"):
        if what == "lifted":
            lift(pipe, lifts)
        kwargs = dict(num_inference_steps=25, height=resolution, width=resolution, output_type="np")
        pipe("a couple of boats as the sun goes down", generator=torch.Generator().manual_seed(0), **kwargs)  # warm-up
        _reset_peak()
        t0 = time.perf_counter()
        image = pipe("a couple of boats as the sun goes down", generator=torch.Generator().manual_seed(0), **kwargs).images
        seconds[what], peak = time.perf_counter() - t0, _peak_gib()
        assert image.shape == (1, resolution, resolution, 3)
        rows.append({"arch": arch, "what": f"generate {what} (25 steps)", "resolution": resolution,
                     "seconds": round(seconds[what], 2), "peak_gib": None if peak is None else round(peak, 2),
                     "projected_gib": None, "error": None})
    rows[-1]["lifted_time_ratio"] = round(seconds["lifted"] / seconds["base"], 3)
    return rows


def markdown(rows: list[dict], device: str) -> str:
    lines = [f"GPU check on {device}", "", "| arch | what | px | seconds | peak GiB | projected GiB | error |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        cells = [r["arch"], r["what"] + (f" ({r['lifted_time_ratio']}x base)" if "lifted_time_ratio" in r else ""),
                 r["resolution"], r["seconds"], r["peak_gib"], r["projected_gib"],
                 "" if r["error"] is None else f"{r['error']:+.1%}"]
        lines.append("| " + " | ".join("" if c is None else str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


@dataclass
class CheckConfig:
    """One step of every trainer and the base and lifted generations on this device, each peak beside `promptlift
    memory`'s projection (SD 1.5 at 512 px, SDXL at 1024 px, random full-size weights: no download)."""

    output_dir: Path = field(default=Path("runs/gpu-check"), metadata={"help": "Pipelines, runs, gpu_check.json and .md."})
    tiny: bool = field(default=False, metadata={"help": "Tiny random pipelines at 32 px: the same code on a CPU."})


def check(cfg: CheckConfig) -> list[dict]:
    """Run the check; returns its rows (also written to OUTPUT_DIR/gpu_check.json and gpu_check.md)."""
    import torch

    from ..files import atomic_write_json, atomic_write_text
    from ..tiny import save_tiny_pipeline

    root = cfg.output_dir
    rows = []
    for arch, resolution in (TINY if cfg.tiny else FULL).items():
        if cfg.tiny:
            model = save_tiny_pipeline(arch, root / arch / "model", text_encoder_2_width=48) \
                if not (root / arch / "model" / "model_index.json").is_file() else root / arch / "model"
        else:
            model = build_pipeline(arch, root / arch / "model")
        data = build_data(resolution, root)
        rows += check_trainers(arch, model, data, resolution, root, str(model) if cfg.tiny else arch)
        rows += check_generation(arch, model, resolution, root)
    device = torch.cuda.get_device_name(0) if _cuda() else "cpu (tiny pipelines: the code path, not the numbers)"
    atomic_write_json(root / "gpu_check.json", {"device": device, "rows": rows})
    atomic_write_text(root / "gpu_check.md", markdown(rows, device))
    print(markdown(rows, device))
    return rows
