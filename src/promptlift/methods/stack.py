"""The lifted stack: all four methods' lifts as one product, in the order they compose."""

from __future__ import annotations

from typing import Sequence

from ..pipeline import parse_lift, register_lifted_stack

__all__ = ["LIFTED_OPTIONS", "LIFTED_STACK", "lifted_options", "lifted_specs"]

# The whole product, in the order the lifts compose (see `encode_prompts`): the refiner rewrites the prompt that every
# other lift then reads; quality-tuning swaps the UNet; the SUR-adapter edits the base model's embedding;
# TextCraftor adds its encoder's change last, since its hybrid schedule hands tensors over mid-sampling.
LIFTED_STACK = ("refiner", "quality-tuning", "sur-adapter", "textcraftor")
# The options the stack sets on its lifts (a `--lift_option` of the same key wins), chosen on selection prompts
# (world prompts of seed 3; docs/reports/narrative.md): the SUR-adapter reads the refiner's rewrite (the SmolLM2
# refiner writes a narrative prompt's content in the base model's words; reading the user's words instead and adding
# the rewrite's change lost most of it); TextCraftor's tuned encoder conditions every denoising step (its own default
# hands over at step 6, best alone) at full strength (narrative prompts won 98.0 % against 92.0 at half, all four
# alike); the quality-tuning LoRA at 2.5 times its change, fused into the UNet: the stack then samples as fast as the
# base model (a fused LoRA is switched off by restoring the weights it changed, but not reweighted).
LIFTED_OPTIONS = ("sur-adapter.reads=rewrite", "textcraftor.switch_step=0", "textcraftor.alpha=1.0",
                  "quality-tuning.scale=2.5", "quality-tuning.fuse=true")

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


register_lifted_stack(lambda specs, options: (lifted_specs(specs), lifted_options(options)))
