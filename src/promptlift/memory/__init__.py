"""Training memory at real size: the model fitted on measured steps (model.py) and `promptlift memory` (estimate.py)."""

from .estimate import MemoryConfig, estimate, format_estimate

__all__ = ["MemoryConfig", "estimate", "format_estimate"]
