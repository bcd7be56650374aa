"""Quality-tuning (Emu): curated-data SFT of the UNet; registers the `quality-tuning` method and lift."""

from pathlib import Path

from ...pipeline import ComponentLift, LoraLift
from ...pipeline.lift_config import LORA_FILE
from ..registry import register_method
from .config import QualityTuningConfig

__all__ = ["QualityTuningConfig"]


@register_method("quality-tuning", config=QualityTuningConfig, trainer=f"{__name__}.trainer:train",
                 help="Emu quality-tuning: UNet SFT on a curated set, early stopping on win rate.",
                 lift_help="Quality-tuned UNet weights (unet/ folder or LoRA); default: the bundle's.")
def _quality_tuning_lift(name: str, path: Path | None, fuse: bool = False, scale: float = 1.0):
    """A LoRA output (LoraLift) or a full `unet/` folder (ComponentLift); `scale` multiplies either's change of the
    UNet's weights, `fuse` (LoRA only; a full UNet replaces the pipeline's) merges the LoRA into them."""
    if path is not None and (path / LORA_FILE).is_file():
        return LoraLift(name, path, fuse=fuse, scale=scale)
    return ComponentLift(name, path, "unet", scale=scale)
