"""Outputs in the formats other tools read: kohya/A1111 LoRA files and single-file checkpoints (model cards, which
every lift folder carries, are `promptlift.pipeline.cards`)."""
