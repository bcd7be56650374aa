"""Quality-tuning (Emu): curated-data SFT of the UNet; registers the `quality-tuning` method and lift."""

from ..registry import register_method
from .config import QualityTuningConfig

__all__ = ["QualityTuningConfig"]

register_method("quality-tuning", config=QualityTuningConfig, trainer=f"{__name__}.trainer:train",
                lift=f"{__name__}.lift:quality_tuning_lift",
                help="Emu quality-tuning: UNet SFT on a curated set, early stopping on win rate.",
                lift_help="Quality-tuned UNet weights (unet/ folder or LoRA); default: the bundle's.")
