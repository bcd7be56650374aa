"""The validation every registry (lifts, rewards, prompt sets) applies when something registers."""

from __future__ import annotations

import re
from typing import Any, Mapping

__all__ = ["NAME_PATTERN", "check_registration"]

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


def check_registration(kind: str, registry: Mapping[str, Any], name: str, factory: Any, help: str) -> None:
    """Raise if `name` is malformed or taken, `factory` is not callable, or `help` is empty."""
    if not NAME_PATTERN.match(name):
        raise ValueError(f"{kind} name {name!r} must be lower-case words joined by '-', e.g. 'clip-score'.")
    if name in registry:
        raise ValueError(f"a {kind} named {name!r} is already registered.")
    if not callable(factory):
        raise TypeError(f"{kind} {name!r}: factory must be callable, got {factory!r}.")
    if not help:
        raise ValueError(f"{kind} {name!r}: give a one-line `help`.")
