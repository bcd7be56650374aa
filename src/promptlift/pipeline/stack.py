"""The lifted stack: all four methods' lifts as one product, as data (the lifts in the order they compose, each with
the options the stack sets on it), expanded in one place: `expand_stack`, which `promptlift.lift(lifted=True)`,
`generate --lifted` (and so `eval --lifted`) and the app's default all call."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from .lifts import parse_lift

__all__ = ["LIFTED_OPTIONS", "LIFTED_STACK", "STACK", "StackLift", "expand_stack", "lifted_options", "lifted_specs"]


@dataclass(frozen=True)
class StackLift:
    """One lift of the stack: its registered name and the options the stack sets on it."""

    name: str
    options: dict = field(default_factory=dict)


# The whole product, in the order the lifts compose (see `encode_prompts`): the refiner rewrites the prompt that every
# other lift then reads; quality-tuning swaps the UNet; the SUR-adapter edits the base model's embedding;
# TextCraftor adds its encoder's change last, since its hybrid schedule hands tensors over mid-sampling.
# The options were chosen on selection prompts (world prompts of seed 3; docs/reports/narrative.md): the SUR-adapter
# reads the refiner's rewrite (the SmolLM2 refiner writes a narrative prompt's content in the base model's words;
# reading the user's words instead and adding the rewrite's change lost most of it); TextCraftor's tuned encoder
# conditions every denoising step (its own default hands over at step 6, best alone) at full strength (narrative
# prompts won 98.0 % against 92.0 at half, all four alike); the quality-tuning LoRA at 2.5 times its change, fused
# into the UNet: the stack then samples as fast as the base model (a fused LoRA is switched off by restoring the
# weights it changed, but not reweighted).
STACK = (
    StackLift("refiner"),
    StackLift("quality-tuning", {"scale": 2.5, "fuse": True}),
    StackLift("sur-adapter", {"reads": "rewrite"}),
    StackLift("textcraftor", {"switch_step": 0, "alpha": 1.0}),
)
LIFTED_STACK = tuple(each.name for each in STACK)
# the options as `--lift_option` strings
LIFTED_OPTIONS = tuple(f"{each.name}.{key}={str(value).lower() if isinstance(value, bool) else value}"
                       for each in STACK for key, value in each.options.items())


def lifted_specs(specs: Sequence[str] = ()) -> list[str]:
    """`--lift` specs of the lifted stack: each of LIFTED_STACK, in that order, with the weights `specs` gives it
    (`NAME=PATH`), else bare (the lift's default: the bundle's on the embedded model; on another model a lift without
    a PATH is refused when loaded); lifts of `specs` outside the stack follow."""
    given = {}  # name -> spec, for the lifts `specs` gives weights (NAME=PATH)
    extra = []
    for spec in specs:
        name, path = parse_lift(spec)
        if name not in LIFTED_STACK:
            extra.append(spec)
        elif path is not None:
            given[name] = spec
    return [given.get(name, name) for name in LIFTED_STACK] + extra


def lifted_options(options: Sequence[str] = ()) -> list[str]:
    """`--lift_option`s of the lifted stack: LIFTED_OPTIONS first (each once), then `options`, which override them."""
    return [o for o in LIFTED_OPTIONS if o not in options] + list(options)


def expand_stack(specs: Sequence[str] = (), options: Sequence[str] = ()) -> tuple[list[str], list[str]]:
    """The lifted stack's (`--lift` specs, `--lift_option`s), with the weights and options the user gives over it."""
    return lifted_specs(specs), lifted_options(options)
