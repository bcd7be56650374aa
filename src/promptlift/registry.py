"""What every registry (lifts, rewards, prompt sets, model profiles) shares: the validation applied when something
registers, and the plug-ins that register things when first asked for."""

from __future__ import annotations

import importlib.metadata
import re
from typing import Any, Mapping

__all__ = ["NAME_PATTERN", "PLUGIN_GROUPS", "check_registration", "load_plugins", "parse_named_options"]

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


# `promptlift.lifts`: packages that register lifts (promptlift's own methods); `promptlift.plugins`: packages that
# register anything else (prompt sets, rewards, model profiles, an embedded model; promptlift's procedural world)
PLUGIN_GROUPS = ("promptlift.lifts", "promptlift.plugins")
_PLUGINS_LOADED = False


def load_plugins() -> None:
    """Import, once, every package of the PLUGIN_GROUPS entry-point groups (declared in pyproject.toml by promptlift
    and by any installed package that extends it); each registers what it brings when imported. Every registry calls
    this before it is read."""
    global _PLUGINS_LOADED
    if not _PLUGINS_LOADED:
        _PLUGINS_LOADED = True
        for group in PLUGIN_GROUPS:
            for entry_point in importlib.metadata.entry_points(group=group):
                entry_point.load()
