"""The recipe that trains and measures the embedded default bundle on the world (`promptlift world train-bundle`)."""

from typing import TYPE_CHECKING

from ..._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "PARTS": ".config", "BundleConfig": ".config", "train_bundle": ".recipe",
})

if TYPE_CHECKING:  # the same names, for type checkers
    from .config import PARTS, BundleConfig
    from .recipe import train_bundle


__all__ = ["PARTS", "BundleConfig", "train_bundle"]
