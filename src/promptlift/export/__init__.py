"""Outputs in the formats other tools read: kohya/A1111 LoRA files, single-file checkpoints, and model cards."""

from .cards import METHOD_PAPERS, model_card, write_model_card

__all__ = ["METHOD_PAPERS", "model_card", "write_model_card"]
