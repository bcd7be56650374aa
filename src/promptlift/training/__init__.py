"""What every promptlift trainer shares: the accelerate loop, checkpoints with exact resume, EMA, logging."""

from .loop import FitResult, TrainConfig, batch_seed, epoch_indices, find_checkpoint, fit

__all__ = ["FitResult", "TrainConfig", "batch_seed", "epoch_indices", "find_checkpoint", "fit"]
