"""Prompt refiner (UF-FGTG, Hei et al. 2024): coarse prompt -> model-preferred fine prompts; registers the `refiner`
method and lift."""

from typing import TYPE_CHECKING

from ..._lazy import lazy_exports
from ..registry import register_method
from .config import RefinerConfig

__getattr__, __dir__ = lazy_exports(__name__, {"Refiner": ".lift", "RefinerLift": ".lift"})
if TYPE_CHECKING:
    from .lift import Refiner, RefinerLift

__all__ = ["Refiner", "RefinerConfig", "RefinerLift"]

register_method("refiner", config=RefinerConfig, trainer=f"{__name__}.trainer:train", lift=f"{__name__}.lift:refiner_lift",
                help="Prompt refiner (UF-FGTG): encoder + domain adapter + decoder, coarse -> fine prompts.",
                lift_help="Prompt refiner: rewrites prompts (one-shot) or conditions on its adapted features; "
                "default: the bundle's.")
