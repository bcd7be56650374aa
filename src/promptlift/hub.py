"""Loading huggingface_hub mixin models quietly."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

__all__ = ["load_hub_mixin"]


def load_hub_mixin(cls, folder: str | Path, **kwargs):
    """`cls.from_pretrained(folder)` for a huggingface_hub `PyTorchModelHubMixin` class, without the line "Loading
    weights from local directory" the mixin prints on every load from a folder."""
    with contextlib.redirect_stdout(io.StringIO()):
        return cls.from_pretrained(folder, **kwargs)
