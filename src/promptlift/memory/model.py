"""The memory model of training at real size: fitted on measured steps (`measured.jsonl`, written by
`promptlift memory calibrate`), it projects a step's peak for any resolution, batch, precision and optimizer, and how many
rows fit on a card. `promptlift memory` asks it about a model of the user's (estimate.py).

Per (architecture, method): the bytes held before a step (frozen weights, trained weights, the rest), gradients,
optimizer state and temporaries, and two activation phases (forward; what backward holds once the gradients are all
there), each a + b x latent pixels, fitted at 256 and 384 px (below them a fixed-size floor sets the activations).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

__all__ = ["ARCHITECTURES", "GPUS", "GiB", "MEASURED", "PAPER_BATCH", "PAPER_RESOLUTION", "derive_full_unet",
           "derive_textcraftor_k5", "latent_pixels", "load_models", "max_batch", "memory_model", "phases", "project",
           "read_measured", "unet_parameters"]

ARCHITECTURES = Path(__file__).resolve().parent / "architectures"  # SD 1.5, 2.1, SDXL component configs
MEASURED = Path(__file__).resolve().parent / "measured.jsonl"
GiB = 2**30
FIT = (256, 384)

PAPER_RESOLUTION = {"sd15": 512, "sd21": 768, "sdxl": 1024}
# the paper configs' per-device batch of rows through the UNet (configs/paper, configs/textcraftor-paper.yaml; the
# refiner's diffusion rows): the batch activations scale with
PAPER_BATCH = {"quality-tuning": 4, "quality-tuning-lora": 4, "sur-adapter": 4, "textcraftor-k1": 32,
               "textcraftor-k5": 32, "refiner": 8, "generate": 1}
GPUS = (24, 40, 80)  # GiB: RTX 4090 / A6000-class, A100 40 GB, A100 / H100 80 GB


def _fit(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares (a, b) of y = a + b x."""
    n = len(points)
    mx, my = sum(x for x, _ in points) / n, sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    b = sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0
    return my - b * mx, b


def latent_pixels(resolution: int) -> int:
    return (resolution // 8) ** 2


def phases(r: dict) -> tuple[float, float]:
    """(forward, backward tail) activation bytes a row of the batch: the forward's peak, and the backward's peak
    above the gradients (what backward still holds when they are all there)."""
    return r["forward_peak"] / r["batch"], max(r["backward_peak"] - r["grads"], 0) / r["batch"]


def memory_model(records: list[dict], fit: list[int]) -> dict:
    """Per (arch, method), from its runs at the `fit` resolutions (batch 1): the bytes held before the step (frozen
    weights, trained weights, the rest), gradients, optimizer state and temporaries, and the two activation phases,
    each a + b x latent pixels."""
    models = {}
    for key in sorted({(r["arch"], r["method"]) for r in records}):
        rows = {r["resolution"]: r for r in records if (r["arch"], r["method"]) == key and r["ok"]}
        used = [rows[res] for res in fit if res in rows]
        if len(used) < 2:
            continue
        last = used[-1]
        dtype_bytes = 4 if last["mixed_precision"] == "no" else 2
        if key[1] == "generate":  # one whole call: the weights it loads are the intercept, activations the slope
            a, b = _fit([(latent_pixels(r["resolution"]), r["peak"] / r["batch"]) for r in used])
            models[key] = dict(held=a, frozen=a, other=0, trainable=0, temporaries=0, forward=(0.0, b), backward=(0.0, 0.0),
                               dtype_bytes=dtype_bytes, rows=rows)
            continue
        parts = [phases(r) for r in used]
        trained = 4 * last["trainable"]  # fp32 under mixed precision too
        models[key] = dict(
            held=last["held"], frozen=last["frozen"], other=last["held"] - last["frozen"] - trained, trainable=last["trainable"],
            temporaries=last["optimizer_peak"] - last["grads"] - last["state"],  # the measured optimizer's
            forward=_fit([(latent_pixels(r["resolution"]), f) for r, (f, _) in zip(used, parts)]),
            backward=_fit([(latent_pixels(r["resolution"]), t) for r, (_, t) in zip(used, parts)]),
            dtype_bytes=dtype_bytes, rows=rows)
    return models


def derive_full_unet(models: dict, counts: dict) -> None:
    """Full-UNet quality-tuning where it could not be measured (SDXL's needs more than this machine's RAM): the LoRA
    run's models and activations (the same forward and backward through the UNet) with the whole UNet trained,
    its optimizer temporaries a parameter as the measured full runs'. Marked `derived`."""
    measured = [m for (arch, method), m in models.items() if method == "quality-tuning"]
    per_param = sum(m["temporaries"] / m["trainable"] for m in measured) / len(measured) if measured else 0.0
    for (arch, method), lora in list(models.items()):
        if method != "quality-tuning-lora" or (arch, "quality-tuning") in models:
            continue
        n = counts[arch]
        models[arch, "quality-tuning"] = dict(
            lora, frozen=lora["frozen"] - n * lora["dtype_bytes"], trainable=n, temporaries=per_param * n, rows={},
            derived=True)


def derive_textcraftor_k5(models: dict) -> None:
    """TextCraftor K = 5 where it was not measured at the fit resolutions: K = 1's model. Each sampling step is
    checkpointed, so the backward through 5 of them holds 4 more step inputs (latents) and nothing else: on every
    architecture and resolution both were measured the two peaks are within 1 %. Marked `derived`."""
    for (arch, method), k1 in list(models.items()):
        if method == "textcraftor-k1" and (arch, "textcraftor-k5") not in models:
            models[arch, "textcraftor-k5"] = dict(k1, rows={}, derived=True)


def project(m: dict, resolution: int, batch: int, *, optimizer: str = "adamw_8bit", half: bool = True) -> float:
    """Projected peak bytes of a step: held + the largest of the forward (batch x activations), the backward
    (gradients + batch x what it holds when they are done) and the optimizer step (gradients + state + temporaries).

    `optimizer`: AdamW's state is two fp32 moments (8 bytes a trained parameter), 8-bit AdamW's 2, and torch's AdamW
    one more fp32 temporary (+4). `half`: frozen weights and activations in bf16/fp16 (mixed precision; trained
    weights and gradients stay fp32)."""
    scale = (2 if half else 4) / m["dtype_bytes"]
    px, n = latent_pixels(resolution), m["trainable"]
    forward, backward = (max(a + b * px, 0.0) * scale for a, b in (m["forward"], m["backward"]))
    grads = 4 * n
    state = {"adamw": 8 * n, "adamw_8bit": 2 * n}[optimizer]
    temporaries = m["temporaries"] + (4 * n if optimizer == "adamw" else 0)
    held = m["other"] + 4 * n + m["frozen"] * scale
    return held + max(batch * forward, grads + batch * backward, grads + state + temporaries)


def max_batch(m: dict, resolution: int, gib: float, **kw) -> int:
    """The largest batch whose projected peak fits in `gib` (0: not even one)."""
    batch = 0
    while batch < 4096 and project(m, resolution, batch + 1, **kw) <= gib * GiB:
        batch += 1
    return batch


@functools.cache
def unet_parameters(arch: str) -> int:
    """The UNet's parameter count from its packaged config, built on the meta device (no memory; once a process)."""
    import torch
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(json.loads((ARCHITECTURES / arch / "unet.json").read_text()))
    return sum(p.numel() for p in unet.parameters())


def read_measured(path: Path = MEASURED) -> list[dict]:
    """The measured steps, the latest of each setting (a run measured again replaces its earlier record)."""
    latest = {}
    for line in Path(path).read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            latest[tuple(r[k] for k in ("arch", "method", "resolution", "batch", "mixed_precision", "optimizer",
                                        "gradient_checkpointing"))] = r
    return list(latest.values())


def load_models(records: list[dict] | None = None, fit: tuple[int, ...] = FIT) -> dict:
    """The fitted models by (arch, method), the derived ones (full-UNet quality-tuning on SDXL, TextCraftor K = 5)
    included."""
    records = read_measured() if records is None else records
    models = memory_model(records, list(fit))
    derive_full_unet(models, {arch: unet_parameters(arch) for arch in {arch for arch, _ in models}})
    derive_textcraftor_k5(models)
    return models
