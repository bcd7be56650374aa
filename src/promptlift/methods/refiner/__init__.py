"""Prompt refiner (UF-FGTG, Hei et al. 2024): coarse prompt -> model-preferred fine prompts; registers `refiner`."""

from pathlib import Path

from ...pipeline import register_lift
from .strategies import Refiner, RefinerLift

__all__ = ["Refiner", "RefinerLift"]

BUNDLE_WEIGHTS = Path(__file__).resolve().parents[2] / "bundle" / "refiner"


def bundle_refiner() -> Path | None:
    return BUNDLE_WEIGHTS if BUNDLE_WEIGHTS.is_dir() else None


@register_lift("refiner", help="Prompt refiner: rewrites prompts (one-shot) or conditions on its adapted features; "
               "default: the bundle's.", default_path=bundle_refiner)
def _refiner_lift(name: str, path: Path | None, strategy: str = "one-shot", max_new_tokens: int = 20, mode: int = 0,
                  sample: bool = False, seed: int = 0) -> RefinerLift:
    return RefinerLift(name, path, strategy, max_new_tokens, mode, sample, seed)
