"""Lifts: post-training changes to a pipeline, and their registry (`--lift NAME[=PATH]`).

A lift reaches the pipeline through one of three seams: it swaps components (`apply`: a tuned text encoder, UNet
weights, a LoRA), rewrites prompts (`rewrite_prompts`: a refiner), or edits the prompt embeddings
(`edit_prompt_embeds`: an adapter). Here are the base class, the registry and the lifts that need only weights;
the methods (`promptlift.methods`) register theirs through the `promptlift.lifts` entry points.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import torch
from diffusers import DiffusionPipeline

from ..registry import check_registration, parse_named_options
from .prompts import join_prompt

if TYPE_CHECKING:
    from .prompts import PromptEmbeds

__all__ = ["LIFTS", "ComponentLift", "KeywordsLift", "Lift", "LiftSpec", "LoraLift", "apply_lifts",
           "load_component_strict", "load_lifts", "load_plugins", "parse_lift", "parse_lift_options",
           "register_lift", "unload_empty_lora_layers"]


class Lift:
    """A post-training change to a pipeline. Subclasses override what they change; the defaults change nothing.

    Attributes:
        name: the registry name it was loaded under.
        path: the weights it was loaded from, if any.
    """

    # Set by `promptlift.lift(reversible=True)` before `apply`: keep what `remove` needs to undo in-place changes.
    keep_originals: bool = False

    def __init__(self, name: str, path: Path | None = None):
        self.name = name
        self.path = path

    def apply(self, pipe: DiffusionPipeline) -> None:
        """Swap or patch pipeline components in place (tuned text encoder, UNet weights, LoRA)."""

    def remove(self, pipe: DiffusionPipeline) -> None:
        """Undo what `apply` changed inside components (`promptlift.unlift`); swapped components are put back for it."""

    def folders(self) -> list[Path]:
        """The folders holding this lift's trained weights (checked against the pipeline's base model)."""
        return [self.path] if self.path is not None and self.path.is_dir() else []

    def rewrite_prompts(self, prompts: list[str]) -> list[str]:
        """Rewrite the user's prompts before encoding (a prompt refiner)."""
        return prompts

    def edit_prompt_embeds(self, pipe: DiffusionPipeline, embeds: PromptEmbeds, prompts: list[str]) -> PromptEmbeds:
        """Change the prompt embeddings before they reach the UNet (an adapter): read `embeds.base` and add the change
        to `embeds` (see `encode_prompts`)."""
        return embeds

    def original_encoders(self) -> dict[str, torch.nn.Module]:
        """{component name: the module this lift's `apply` replaced}, for encoders only: how the base model encodes."""
        return {}

    # Pipeline tensors `on_step_end` reads or replaces (diffusers' `callback_on_step_end_tensor_inputs`).
    callback_tensor_inputs: tuple[str, ...] = ()

    def on_step_end(self, pipe: DiffusionPipeline, step: int, timestep, tensors: dict) -> dict:
        """Called after denoising step `step`; returns the tensors to replace from the next step on (a schedule
        of conditionings, as TextCraftor's hybrid sampling). Only lifts with `callback_tensor_inputs` are asked."""
        return {}

    def describe(self) -> dict:
        """What to record in an image's sidecar to reproduce it."""
        return {"name": self.name, "path": str(self.path) if self.path else None}


@dataclass(frozen=True)
class LiftSpec:
    """A registered lift: how to build it from a path, and where its default weights live."""

    name: str
    factory: Callable[..., Lift]
    help: str
    default_path: Callable[[], Path | None] | None = None
    path_is_spec: bool = False  # PATH is a spec the factory parses (e.g. "a:0.7,b:0.3"), not one path

    def options(self) -> list[str]:
        """The keyword options the factory takes (`--lift_option NAME.KEY=VALUE`)."""
        import inspect

        params = list(inspect.signature(self.factory).parameters.values())[2:]
        return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


LIFTS: dict[str, LiftSpec] = {}


def register_lift(name: str, *, help: str, default_path: Callable[[], Path | None] | None = None,
                  path_is_spec: bool = False):
    """Register a lift factory `(name, path, **options) -> Lift` under `name`; validated on registration."""

    def decorator(factory: Callable[..., Lift]):
        check_registration("lift", LIFTS, name, factory, help)
        LIFTS[name] = LiftSpec(name, factory, help, default_path, path_is_spec)
        return factory

    return decorator


def parse_lift_options(options: Sequence[str]) -> dict[str, dict]:
    """{lift: {key: value}} from "LIFT.KEY=VALUE" strings (`--lift_option`)."""
    return parse_named_options(options, "lift option", "textcraftor.alpha=0.5")


def load_plugins() -> None:
    """Import, once, the packages that register lifts through the `promptlift.lifts` entry-point group: promptlift's
    methods (`promptlift.methods`, declared in pyproject.toml) and any installed package that adds lifts."""
    global _PLUGINS_LOADED
    if not _PLUGINS_LOADED:
        _PLUGINS_LOADED = True
        for entry_point in importlib.metadata.entry_points(group="promptlift.lifts"):
            entry_point.load()


_PLUGINS_LOADED = False


def parse_lift(spec: str) -> tuple[str, Path | None]:
    """`"NAME[=PATH]"` -> (NAME, PATH or None); NAME must be registered."""
    load_plugins()
    name, _, path = spec.partition("=")
    name = name.strip()
    if name not in LIFTS:
        known = ", ".join(sorted(LIFTS)) or "(none)"
        raise ValueError(f"unknown lift {name!r} in `--lift {spec}`; registered lifts: {known}.")
    return name, (Path(path).expanduser() if path else None)


def load_lifts(specs: Sequence[str], options: Sequence[str] = (), *, pipe: DiffusionPipeline | None = None) -> list[Lift]:
    """Build lifts from `NAME[=PATH]` strings, filling each missing PATH with the lift's default; `options`
    are `LIFT.KEY=VALUE` strings passed to the lift's factory. With `pipe`, the lifts are for that pipeline: the
    defaults (the bundle's weights, trained on the embedded model) are refused on any other model, and every lift's
    weights are checked against it (`check_fits`)."""
    from .base_model import check_fits, is_embedded_model, model_name

    parsed = parse_lift_options(options)
    names = [parse_lift(spec)[0] for spec in specs]
    for name, opts in parsed.items():
        if name not in names:
            raise ValueError(f"`--lift_option {name}.…` is given but no `--lift {name}`; add the lift or drop the option.")
        unknown = sorted(set(opts) - set(LIFTS[name].options()))
        if unknown:
            raise ValueError(f"lift {name!r} has no option {', '.join(unknown)}; its options: "
                             f"{', '.join(LIFTS[name].options()) or '(none)'}.")
    lifts = []
    for spec in specs:
        name, path = parse_lift(spec)
        lift_spec = LIFTS[name]
        if path is None and lift_spec.default_path is not None:
            if pipe is not None and not is_embedded_model(pipe):
                raise ValueError(f"`--lift {spec}` takes the bundle's weights, which are the embedded model's, not "
                                 f"{model_name(pipe)}'s; train it: promptlift train {name} --model {model_name(pipe)}, "
                                 f"then pass `--lift {name}=OUTPUT_DIR/best`.")
            path = lift_spec.default_path()
        if path is not None and not lift_spec.path_is_spec and not path.exists():
            raise ValueError(f"`--lift {spec}`: {str(path)!r} does not exist; pass NAME=PATH with the lift's weights.")
        lifts.append(lift_spec.factory(name, path, **_typed_options(lift_spec, parsed.get(name, {}))))
    if pipe is not None:
        check_fits(pipe, [(lift.name, folder) for lift in lifts for folder in lift.folders()])
    return lifts


def _typed_options(spec: LiftSpec, options: dict) -> dict:
    """Lift options converted to the factory's annotated types (a float must be finite), named on error."""
    import typing

    from ..config import coerce

    try:
        hints = typing.get_type_hints(spec.factory)
    except (NameError, TypeError):
        hints = {}
    return {key: coerce(value, hints[key], f"--lift_option {spec.name}.{key}") if key in hints else value
            for key, value in options.items()}


def apply_lifts(pipe: DiffusionPipeline, lifts: Sequence[Lift]) -> DiffusionPipeline:
    """Apply each lift's component swaps, in order."""
    for lift in lifts:
        lift.apply(pipe)
    return pipe


def _require_path(name: str, path: Path | None) -> Path:
    if path is None:
        raise ValueError(f"lift {name!r} needs weights: pass `--lift {name}=PATH`.")
    return path


class ComponentLift(Lift):
    """Replace one pipeline component (`text_encoder`, `text_encoder_2`, `unet`) with weights from a folder.

    PATH is the component's own folder (with config.json) or a pipeline folder holding it as a subfolder.
    This is how a TextCraftor-tuned text encoder or a quality-tuned UNet reaches a pipeline. `scale` multiplies the
    weights' change from the pipeline's own, `own + scale x (tuned - own)`, as a LoRA's scale multiplies its change.
    """

    def __init__(self, name: str, path: Path | None, component: str, scale: float = 1.0):
        super().__init__(name, _require_path(name, path))
        self.component, self.scale = component, float(scale)

    def apply(self, pipe: DiffusionPipeline) -> None:
        current = getattr(pipe, self.component, None)
        if current is None:
            raise ValueError(f"lift {self.name!r}: this {type(pipe).__name__} has no `{self.component}`.")
        folder = self.path / self.component if (self.path / self.component / "config.json").is_file() else self.path
        if not (folder / "config.json").is_file():
            raise ValueError(
                f"lift {self.name!r}: {str(self.path)!r} holds no {self.component} (no config.json in it or in "
                f"its `{self.component}/` subfolder); pass the folder written by `save_pretrained`."
            )
        new = load_component_strict(type(current), folder, f"lift {self.name!r}")
        new = new.to(device=current.device, dtype=current.dtype)
        _check_same_interface(self.name, self.component, current.config, new.config)
        if self.scale != 1.0:
            own = current.state_dict()
            with torch.no_grad():
                for key, value in new.state_dict().items():
                    if value.is_floating_point():
                        value.copy_(own[key] + self.scale * (value - own[key]))
        pipe.register_modules(**{self.component: new.eval()})

    def describe(self) -> dict:
        return {**super().describe(), "component": self.component, "scale": self.scale}


def load_component_strict(cls, folder: Path, what: str):
    """`cls.from_pretrained(folder)` that refuses weights with missing or unexpected keys (never a partial load)."""
    model, info = cls.from_pretrained(folder, output_loading_info=True)
    bad = {k: sorted(info.get(k) or []) for k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    bad = {k: v for k, v in bad.items() if v}
    if bad:
        detail = "; ".join(f"{k.replace('_', ' ')}: {', '.join(map(str, v[:5]))}{' …' if len(v) > 5 else ''} ({len(v)})"
                           for k, v in bad.items())
        raise ValueError(f"{what}: the weights in {str(folder)!r} do not match {cls.__name__} ({detail}); "
                         "pass a folder saved by `save_pretrained` from the same architecture.")
    return model


def _check_same_interface(lift: str, component: str, old, new) -> None:
    """A swapped component must keep the sizes the rest of the pipeline is wired to."""
    keys = ("hidden_size", "projection_dim", "cross_attention_dim", "in_channels", "out_channels", "sample_size")

    def get(config, key):
        return config.get(key) if isinstance(config, dict) else getattr(config, key, None)

    diffs = {k: (get(old, k), get(new, k)) for k in keys if get(old, k) != get(new, k)}
    if diffs:
        detail = ", ".join(f"{k}: pipeline {a} vs lift {b}" for k, (a, b) in diffs.items())
        raise ValueError(f"lift {lift!r}: the {component} does not fit this pipeline ({detail}).")


class LoraLift(Lift):
    """Load diffusers-format LoRA weights (UNet and/or text encoders) with `pipe.load_lora_weights`.

    `fuse` (default) merges the LoRA into the weights it adapts and removes its layers, so a generation costs what the
    base model's does (unfused, every adapted layer runs two more matmuls at every step); `fuse=False` keeps the layers
    (to switch or reweight adapters later). `scale` multiplies the LoRA's change.
    """

    def __init__(self, name: str, path: Path | None, fuse: bool = True, scale: float = 1.0):
        super().__init__(name, _require_path(name, path))
        if not fuse and scale != 1.0:
            raise ValueError(f"lift {name!r}: `scale` {scale} needs `fuse` (an unfused LoRA is reweighted with "
                             "diffusers' `pipe.set_adapters`); drop `fuse=False` or the scale.")
        self.fuse, self.scale = bool(fuse), float(scale)
        self._saved: list[tuple[torch.nn.Module, torch.Tensor]] = []  # (layer, its weight before fusing), to restore

    @property
    def adapter_name(self) -> str:
        return self.name.replace("-", "_")

    def apply(self, pipe: DiffusionPipeline) -> None:
        adapter = self.adapter_name
        pipe.load_lora_weights(str(self.path), adapter_name=adapter)
        if self.fuse:
            # the weights fusing changes, as they were (on their device: `unlift` copies them back)
            self._saved = [(layer, layer.weight.detach().clone()) for layer in _lora_base_layers(pipe, adapter)] \
                if self.keep_originals else []
            pipe.fuse_lora(adapter_names=[adapter], lora_scale=self.scale)
            pipe.delete_adapters(adapter)  # the merged weights stay; this adapter's LoRA weights go
            unload_empty_lora_layers(pipe)  # and the emptied LoRA layers, which still cost a call per layer and step

    def remove(self, pipe: DiffusionPipeline) -> None:
        if not self.fuse:
            pipe.delete_adapters(self.adapter_name)
            unload_empty_lora_layers(pipe)
            return
        with torch.no_grad():
            for layer, weight in self._saved:
                layer.weight.copy_(weight)
        self._saved = []

    def describe(self) -> dict:
        return {**super().describe(), "fuse": self.fuse, "scale": self.scale}


def _lora_base_layers(pipe: DiffusionPipeline, adapter: str) -> list[torch.nn.Module]:
    """The layers (nn.Linear, nn.Conv2d) that LoRA `adapter` adapts, in every component."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [module.get_base_layer() for component in pipe.components.values() if isinstance(component, torch.nn.Module)
            for module in component.modules() if isinstance(module, BaseTunerLayer) and adapter in getattr(module, "lora_A", {})]


def unload_empty_lora_layers(pipe: DiffusionPipeline) -> None:
    """Remove the emptied LoRA layers once no adapter is left in the pipeline."""
    if not any(pipe.get_list_adapters().values()):
        pipe.unload_lora_weights()


register_lift("lora", help="LoRA weights in diffusers format (pytorch_lora_weights.safetensors); PATH required.")(
    LoraLift
)
register_lift("text-encoder", help="Swap in a tuned text encoder folder (config.json + weights); PATH required.")(
    lambda name, path: ComponentLift(name, path, "text_encoder")
)
register_lift("unet", help="Swap in tuned UNet weights from a folder (config.json + weights); PATH required.")(
    lambda name, path: ComponentLift(name, path, "unet")
)


# what prompt guides tell people to append (and words the world's complex prompts use)
DEFAULT_QUALITY_KEYWORDS = "highly detailed, sharp focus, soft lighting"


class KeywordsLift(Lift):
    """The rule-based baseline of prompt refinement: append fixed quality keywords to every prompt."""

    def __init__(self, name: str, path: Path | None, keywords: str = DEFAULT_QUALITY_KEYWORDS):
        if path is not None:
            raise ValueError(f"lift {name!r} takes no PATH; set the words with `--lift_option {name}.keywords=...`.")
        super().__init__(name, None)
        self.keywords = ", ".join(k.strip() for k in str(keywords).split(",") if k.strip())
        if not self.keywords:
            raise ValueError(f"lift {name!r}: `keywords` is empty; pass comma-separated words, e.g. {DEFAULT_QUALITY_KEYWORDS!r}.")

    def rewrite_prompts(self, prompts: list[str]) -> list[str]:
        return [join_prompt(p, self.keywords) for p in prompts]

    def describe(self) -> dict:
        return {**super().describe(), "keywords": self.keywords}


register_lift("keywords", help="Baseline prompt expander: appends quality keywords (option `keywords`).")(KeywordsLift)
