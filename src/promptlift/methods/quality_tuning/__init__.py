"""Quality-tuning (Emu): curated-data SFT of the UNet; registers the `quality-tuning` lift."""

from pathlib import Path

from ...pipeline import ComponentLift, LoraLift, register_lift
from .config import QualityTuningConfig

__all__ = ["QualityTuningConfig"]

BUNDLE_WEIGHTS = Path(__file__).resolve().parents[2] / "bundle" / "quality-tuning"


def _default_path() -> Path | None:
    return BUNDLE_WEIGHTS if BUNDLE_WEIGHTS.is_dir() else None


@register_lift("quality-tuning", help="Quality-tuned UNet weights (unet/ folder or LoRA); default: the bundle's.",
               default_path=_default_path)
def _quality_tuning_lift(name: str, path: Path | None):
    if path is not None and (path / "pytorch_lora_weights.safetensors").is_file():
        return LoraLift(name, path)
    return ComponentLift(name, path, "unet")
