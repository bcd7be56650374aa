"""The validation every registry (lifts, rewards, prompt sets) applies when something registers."""

from __future__ import annotations

import re
from typing import Any, Mapping

__all__ = ["NAME_PATTERN", "check_registration", "parse_named_options"]

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


_OPTION = re.compile(r"^([a-z0-9-]+)\.([a-z_][a-z0-9_]*)=(.*)$")


def parse_named_options(options, flag: str, example: str) -> dict[str, dict]:
    """{name: {key: value}} from "NAME.KEY=VALUE" strings of the option `flag`; "true"/"false" become booleans."""
    parsed: dict[str, dict] = {}
    for opt in options:
        m = _OPTION.match(opt)
        if not m:
            raise ValueError(f"{flag} {opt!r} must look like NAME.KEY=VALUE, e.g. {example}.")
        name, key, value = m.groups()
        parsed.setdefault(name, {})[key] = {"true": True, "false": False}.get(value.lower(), value)
    return parsed
