"""What every promptlift trainer shares: the accelerate loop, checkpoints with exact resume, EMA, logging."""

from .loop import FitResult, TrainConfig, epoch_indices, find_checkpoint, fit

__all__ = ["FitResult", "TrainConfig", "epoch_indices", "find_checkpoint", "fit"]
