"""The quality-tuning lift: what `promptlift train quality-tuning` wrote, applied to a pipeline's UNet."""

from __future__ import annotations

from pathlib import Path

from ...pipeline import ComponentLift, Lift, LoraLift
from ...pipeline.lift_config import LORA_FILE

__all__ = ["quality_tuning_lift"]


def quality_tuning_lift(name: str, path: Path | None, fuse: bool = False, scale: float = 1.0) -> Lift:
    """A LoRA output (LoraLift) or a full `unet/` folder (ComponentLift); `scale` multiplies either's change of the
    UNet's weights, `fuse` (LoRA only; a full UNet replaces the pipeline's) merges the LoRA into them."""
    if path is not None and (path / LORA_FILE).is_file():
        return LoraLift(name, path, fuse=fuse, scale=scale)
    return ComponentLift(name, path, "unet", scale=scale)
