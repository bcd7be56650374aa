"""The lift registry: each lift type's name, the factory that builds it and its options (`--lift NAME[=PATH]`,
`--lift_option NAME.KEY=VALUE`). At the bottom of the pipeline package: it imports none of it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from ..registry import check_registration, parse_named_options

if TYPE_CHECKING:
    from .contract import Lift

__all__ = ["LIFTS", "LiftSpec", "build_lift", "check_options", "parse_lift_options", "register_lift"]


@dataclass(frozen=True)
class LiftSpec:
    """A registered lift: how to build it from a path, and where its default weights live."""

    name: str
    factory: Callable[..., Lift] | str  # or "module:function", imported when the lift is first built or asked about
    help: str
    default_path: Callable[[], Path | None] | None = None
    path_is_spec: bool = False  # PATH is a spec the factory parses (e.g. "a:0.7,b:0.3"), not one path
    weights: bool = True  # False: the lift takes no weights (a keyword expander)

    def build(self) -> Callable[..., Lift]:
        """The factory (imported now if it was registered as "module:function")."""
        if isinstance(self.factory, str):
            import importlib

            module, _, function = self.factory.partition(":")
            return getattr(importlib.import_module(module), function)
        return self.factory

    def options(self) -> list[str]:
        """The keyword options the factory takes (`--lift_option NAME.KEY=VALUE`)."""
        return list(self.option_defaults())

    def option_defaults(self) -> dict:
        """{option: its default} of the factory's keyword options."""
        import inspect

        params = list(inspect.signature(self.build()).parameters.values())[2:]
        return {p.name: p.default for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                and not p.name.startswith("_")}


LIFTS: dict[str, LiftSpec] = {}


def register_lift(name: str, *, help: str, default_path: Callable[[], Path | None] | None = None,
                  path_is_spec: bool = False, weights: bool = True):
    """Register a lift factory `(name, path, **options) -> Lift` under `name` (the decorated function, or its
    "module:function" name, imported when the lift is first built); validated on registration."""

    def decorator(factory: Callable[..., Lift] | str):
        if isinstance(factory, str) and not all(factory.partition(":")[::2]):
            raise ValueError(f"lift {name!r}: a factory named by a string must be 'module:function', got {factory!r}.")
        check_registration("lift", LIFTS, name, factory if callable(factory) else (lambda: None), help)
        LIFTS[name] = LiftSpec(name, factory, help, default_path, path_is_spec, weights)
        return factory

    return decorator


def parse_lift_options(options: Sequence[str]) -> dict[str, dict]:
    """{lift: {key: value}} from "LIFT.KEY=VALUE" strings (`--lift_option`)."""
    return parse_named_options(options, "lift option", "textcraftor.alpha=0.5")


def check_options(name: str, options: dict, where: str) -> None:
    """Refuse, by name, options lift `name` does not have."""
    unknown = sorted(set(options) - set(LIFTS[name].options()))
    if unknown:
        raise ValueError(f"{where}: lift {name!r} has no option {', '.join(map(repr, unknown))}; its options: "
                         f"{', '.join(LIFTS[name].options()) or '(none)'}.")


def build_lift(name: str, path: Path | None, options: dict, *, where: str) -> Lift:
    """The lift registered as `name` built on `path` with `options` (converted to the factory's types; unknown ones
    refused by name, as `where` says); its `options` record them over the factory's defaults."""
    spec = LIFTS[name]
    check_options(name, options, where)
    typed = _typed_options(spec, options)
    lift = spec.build()(name, path, **typed)
    lift.options = {**spec.option_defaults(), **typed}
    return lift


def _typed_options(spec: LiftSpec, options: dict) -> dict:
    """Lift options converted to the factory's annotated types (a float must be finite), named on error."""
    import typing

    from ..config import coerce

    try:
        hints = typing.get_type_hints(spec.build())
    except (NameError, TypeError):
        hints = {}
    return {key: coerce(value, hints[key], f"--lift_option {spec.name}.{key}") if key in hints else value
            for key, value in options.items()}
