"""Prompt refiner (UF-FGTG, Hei et al. 2024): coarse prompt -> model-preferred fine prompts; registers the `refiner`
method and lift."""

from pathlib import Path

from ..registry import register_method
from .config import RefinerConfig
from .lift import Refiner, RefinerLift

__all__ = ["Refiner", "RefinerConfig", "RefinerLift"]


@register_method("refiner", config=RefinerConfig, trainer=f"{__name__}.trainer:train",
                 help="Prompt refiner (UF-FGTG): encoder + domain adapter + decoder, coarse -> fine prompts.",
                 lift_help="Prompt refiner: rewrites prompts (one-shot) or conditions on its adapted features; "
                 "default: the bundle's.")
def _refiner_lift(name: str, path: Path | None, strategy: str = "one-shot", max_new_tokens: int = 20, mode: int = 0,
                  sample: bool = False, seed: int = 0) -> RefinerLift:
    return RefinerLift(name, path, strategy, max_new_tokens, mode, sample, seed)
