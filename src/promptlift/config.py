"""Typed dataclass configs <-> YAML <-> `--key value` command-line overrides.

Every command and trainer takes one config dataclass. Its fields are documented once, in
``field(metadata={"help": ...})``; the CLI builds its options from them, so help text never drifts.
Precedence: dataclass defaults < YAML file (``--config``) < command-line options.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal, Mapping, TypeVar, Union

import yaml


T = TypeVar("T")

__all__ = [
    "ConfigError",
    "ConfigField",
    "check_range",
    "config_fields",
    "coerce",
    "from_dict",
    "load_config",
    "save_config",
    "to_dict",
]


class ConfigError(ValueError):
    """A config key or value that cannot be used; the message names it and the fix."""


class ConfigField(typing.NamedTuple):
    """One config key: its resolved type, default (MISSING if required) and help text."""

    name: str
    type: Any
    default: Any
    help: str
    min: float | None = None  # field(metadata={"min": ..., "max": ...}): the meaningful range, checked on loading
    max: float | None = None
    aliases: tuple[str, ...] = ()  # field(metadata={"aliases": ("model",)}): other names of the key (CLI and YAML)


def config_fields(cls: type) -> dict[str, ConfigField]:
    """The init fields of a config dataclass, by name, with their types resolved."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass.")
    hints = typing.get_type_hints(cls)
    fields = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        default = f.default
        if f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        fields[f.name] = ConfigField(f.name, hints[f.name], default, f.metadata.get("help", ""), f.metadata.get("min"),
                                     f.metadata.get("max"), tuple(f.metadata.get("aliases", ())))
    return fields


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    """`X | None` -> (X, True); anything else -> (tp, False)."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _coerce_bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
        return True
    if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
        return False
    raise ConfigError(f"`{key}` must be true or false, got {value!r}.")


def coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert a YAML or command-line value to the field type `tp`, or raise ConfigError."""
    inner, optional = _unwrap_optional(tp)
    if value is None or (optional and isinstance(value, str) and value.lower() in ("none", "null")):
        if optional:
            return None
        raise ConfigError(f"`{key}` cannot be empty (null); give a value of type {_type_name(tp)}.")
    origin = typing.get_origin(inner)
    if origin is Literal:
        choices = typing.get_args(inner)
        for choice in choices:
            if value == choice or (isinstance(value, str) and str(choice) == value):
                return choice
        raise ConfigError(f"`{key}` must be one of {list(choices)}, got {value!r}.")
    if origin in (list, tuple):
        (item_tp, *_) = typing.get_args(inner) or (str,)
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"`{key}` must be a list, got {value!r}.")
        items = [coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if inner is bool:
        return _coerce_bool(value, key)
    if inner in (int, float):
        if isinstance(value, bool) or (inner is int and isinstance(value, float) and not value.is_integer()):
            raise ConfigError(f"`{key}` must be {inner.__name__}, got {value!r}.")
        try:
            number = inner(value)
        except (TypeError, ValueError, OverflowError):
            raise ConfigError(f"`{key}` must be {inner.__name__}, got {value!r}.") from None
        if inner is float and not math.isfinite(number):
            raise ConfigError(f"`{key}` must be a finite number, got {value!r}.")
        return number
    if inner is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"`{key}` must be a string, got {value!r}.")
        return str(value)
    if inner is Path:
        return Path(value)
    if dataclasses.is_dataclass(inner) and isinstance(value, Mapping):
        return from_dict(inner, value, source=f"`{key}`")
    if isinstance(value, inner):
        return value
    raise ConfigError(f"`{key}` must be {_type_name(tp)}, got {value!r}.")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def from_dict(cls: type[T], data: Mapping[str, Any], source: str = "config") -> T:
    """Build `cls` from a mapping; unknown keys and mistyped values are errors naming the key."""
    fields = _check_keys(cls, data, source)
    kwargs = {k: check_range(coerce(v, fields[k].type, k), fields[k]) for k, v in data.items()}
    return cls(**kwargs)


def check_range(value: Any, f: ConfigField) -> Any:
    """`value` when it lies in the field's meaningful range (its metadata "min" / "max"), else a ConfigError."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if f.min is not None and value < f.min or f.max is not None and value > f.max:
            low, high = (None if v is None else int(v) if float(v).is_integer() else v for v in (f.min, f.max))
            bounds = (f"from {low} to {high}" if f.min is not None and f.max is not None
                      else f">= {low}" if f.min is not None else f"<= {high}")
            raise ConfigError(f"`{f.name}` must be {bounds}, got {value!r}.")
    return value


def _unaliased(cls: type, data: Mapping[str, Any]) -> dict[str, Any]:
    """`data` with each alias key under its field's name."""
    names = {alias: f.name for f in config_fields(cls).values() for alias in f.aliases}
    return {names.get(key, key): value for key, value in data.items()}


def _check_keys(cls: type, data: Mapping[str, Any], source: str) -> dict[str, ConfigField]:
    fields = config_fields(cls)
    unknown = [k for k in data if k not in fields]
    if unknown:
        raise ConfigError(
            f"unknown key {', '.join(f'`{k}`' for k in unknown)} in {source} for {cls.__name__}; "
            f"valid keys: {', '.join(fields)}."
        )
    return fields


def to_dict(cfg: Any) -> dict[str, Any]:
    """A config as plain YAML/JSON-safe values (paths become strings, tuples lists)."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v) if f.init}
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(cfg)


def load_config(
    cls: type[T], path: str | Path | None = None, overrides: Mapping[str, Any] | None = None
) -> T:
    """Defaults, then the YAML file at `path` (if any), then `overrides` (e.g. from the command line)."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} does not exist; pass the path of a YAML file.")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            where = getattr(e, "problem_mark", None)
            line = f" at line {where.line + 1}, column {where.column + 1}" if where is not None else ""
            raise ConfigError(f"config file {str(path)!r} is not valid YAML{line}: {getattr(e, 'problem', e)}; "
                              "fix it (keys as `name: value`, one per line).") from None
        except UnicodeDecodeError as e:
            raise ConfigError(f"config file {str(path)!r} is not UTF-8 text ({e.reason} at byte {e.start}).") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {str(path)!r} must hold a mapping of key: value, got {type(loaded).__name__}.")
        loaded = _unaliased(cls, loaded)
        _check_keys(cls, loaded, source=str(path))
        data.update(loaded)
    data.update(_unaliased(cls, overrides or {}))
    return from_dict(cls, data, source="the command line" if overrides else "config")


def save_config(cfg: Any, path: str | Path) -> Path:
    """Write `cfg` as YAML, atomically."""
    from .files import atomic_write_text

    return atomic_write_text(Path(path), yaml.safe_dump(to_dict(cfg), sort_keys=False))
