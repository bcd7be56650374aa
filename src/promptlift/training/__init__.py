"""What every promptlift trainer shares: the accelerate loop, checkpoints with exact resume, EMA, logging."""

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "FitResult": ".loop", "TrainConfig": ".config", "batch_seed": ".loop", "epoch_indices": ".loop",
    "find_checkpoint": ".loop", "fit": ".loop",
})

if TYPE_CHECKING:  # the same names, for type checkers
    from .config import TrainConfig
    from .loop import FitResult, batch_seed, epoch_indices, find_checkpoint, fit


__all__ = ["FitResult", "TrainConfig", "batch_seed", "epoch_indices", "find_checkpoint", "fit"]
