"""Lifts by name (`--lift NAME[=PATH]`, `--lift_option NAME.KEY=VALUE`) built from the registry, and the lifts that
need only weights (a component, a LoRA, quality keywords); the methods (`promptlift.methods`) register theirs through
the `promptlift.lifts` entry points.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from diffusers import DiffusionPipeline

from ..registry import load_plugins
from .base_model import check_fits, is_embedded_model, model_name, model_source, read_base_model
from .contract import Lift
from .lift_config import (LIFT_CONFIG_FILE, folder_options, lift_type_of, read_lift_config, recorded_options,
                          resolve_lift_source, write_lift_config)
from .lift_registry import LIFTS, build_lift, check_options, parse_lift_options, register_lift
from .prompts import join_prompt

__all__ = ["ComponentLift", "KeywordsLift", "LoraLift", "apply_lifts", "convert_lift_folder", "lift_for",
           "load_component_strict", "load_lifts", "parse_lift", "unload_empty_lora_layers"]


def parse_lift(spec: str) -> tuple[str, Path | None]:
    """`"NAME[=PATH]"` -> (NAME, PATH or None); NAME must be registered. A spec that is a lift folder or a Hub repo id
    with a lift_config.json (no NAME) -> (its lift type, its local folder)."""
    load_plugins()
    name, sep, path = spec.partition("=")
    name = name.strip()
    if name in LIFTS:
        return name, (Path(path).expanduser() if path else None)
    if not sep:
        try:
            folder = resolve_lift_source(spec)
        except ValueError:
            folder = None
        if folder is not None and folder.is_dir():
            return lift_type_of(folder), folder
    known = ", ".join(sorted(LIFTS)) or "(none)"
    raise ValueError(f"unknown lift {name!r} in `--lift {spec}`; registered lifts: {known} (or pass a lift folder or "
                     "Hub repo id).")


def load_lifts(specs: Sequence[str], options: Sequence[str] = (), *, pipe: DiffusionPipeline | None = None) -> list[Lift]:
    """Build lifts from `NAME[=PATH]` strings (the CLI's `--lift`), filling each missing PATH with the lift's default;
    PATH may be a folder, a Hub repo id or a mix the lift parses. `options` are `LIFT.KEY=VALUE` strings passed to the
    lift's factory, over the defaults the folder's lift_config.json records. With `pipe`, the lifts are for that
    pipeline: the defaults (the bundle's weights, trained on the embedded model) are refused on any other model, and
    every lift's weights are checked against it (`check_fits`)."""

    parsed = parse_lift_options(options)
    named = [parse_lift(spec) for spec in specs]  # once each: a Hub repo id is looked up in the cache
    for name, opts in parsed.items():
        if name not in [n for n, _ in named]:
            raise ValueError(f"`--lift_option {name}.…` is given but no `--lift {name}`; add the lift or drop the option.")
        check_options(name, opts, f"--lift_option {name}.KEY")
    lifts = [lift_for(name, path, parsed.get(name, {}), pipe=pipe, spec=spec) for spec, (name, path) in zip(specs, named)]
    if pipe is not None:
        check_fits(pipe, [(lift.name, folder) for lift in lifts for folder in lift.folders()])
    return lifts


def lift_for(name: str, path: Path | None, options: dict, *, pipe: DiffusionPipeline | None = None,
             spec: str | None = None) -> Lift:
    """The registered lift `name` on `path` (a folder, a Hub repo id, a mix; None: the lift's default weights, which
    are the bundle's and refused on any pipeline but the embedded model's) with `options` over the defaults its
    lift_config.json records. `spec` is how the user named it, for errors (default `NAME[=PATH]`)."""
    spec = spec or (f"{name}={path}" if path is not None else name)
    path = _lift_path(name, path, spec, pipe)
    return build_lift(name, path, {**folder_options(name, path, f"--lift {spec}"), **options},
                      where=f"--lift_option {name}")


def _lift_path(name: str, path: Path | None, spec: str, pipe: DiffusionPipeline | None) -> Path | None:
    """The weights of `--lift NAME[=PATH]`: PATH (a Hub repo id resolved to its cached folder), else the lift's
    default, which is the bundle's and refused on any model but the embedded one."""
    lift_spec = LIFTS[name]
    if path is None and lift_spec.default_path is not None:
        if pipe is not None and not is_embedded_model(pipe):
            raise ValueError(f"`--lift {spec}` takes the bundle's weights, which are the embedded model's, not "
                             f"{model_name(pipe)}'s; train it: promptlift train {name} --model "
                             f"{model_source(pipe) or 'YOUR_MODEL'}, "
                             f"then pass `--lift {name}=OUTPUT_DIR/best`.")
        return lift_spec.default_path()
    if path is None or lift_spec.path_is_spec and not path.exists() and ":" in str(path):
        return path
    try:
        return resolve_lift_source(path)
    except ValueError as err:
        raise ValueError(f"`--lift {spec}`: {err}") from None


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

        >>> import promptlift
        >>> pipe = promptlift.load_pipeline()
        >>> own = pipe.text_encoder
        >>> tuned = promptlift.ComponentLift("text-encoder", promptlift.bundle_lift("textcraftor"), "text_encoder")
        >>> promptlift.load_lift(pipe, tuned)
        >>> pipe.text_encoder is own
        False
        >>> with promptlift.disable_lifts(pipe):
        ...     pipe.text_encoder is own
        True
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
    """Diffusers-format LoRA weights (UNet and/or text encoders), loaded with `pipe.load_lora_weights` under the lift's
    adapter name, as diffusers' own LoRAs are: several coexist, `promptlift.set_lifts` weighs them through the
    pipeline's `set_adapters`, `disable_lifts` and `unload_lifts` switch them off and remove them.

    PATH is a folder with pytorch_lora_weights.safetensors or one .safetensors file. `scale` multiplies the LoRA's
    change (its adapter weight at lift weight 1). `fuse=True` merges the LoRA into the weights it adapts and removes
    its layers, so a generation costs what the base model's does (unfused, every adapted layer runs two more matmuls
    at every step); a fused LoRA's weight is then fixed, and switching it off restores the weights it changed.

        >>> import promptlift
        >>> pipe = promptlift.load_pipeline()
        >>> lora = promptlift.LoraLift("lora", promptlift.bundle_lift("quality-tuning"), scale=0.5)
        >>> promptlift.load_lift(pipe, lora, adapter_name="qt")
        >>> pipe.get_active_adapters()
        ['qt']
    """

    def __init__(self, name: str, path: Path | None, fuse: bool = False, scale: float = 1.0):
        super().__init__(name, _require_path(name, path))
        self.fuse, self.scale = bool(fuse), float(scale)
        self._saved: list[tuple[torch.nn.Module, torch.Tensor]] = []  # (layer, the weight not in use), to switch
        self._active = True

    def apply(self, pipe: DiffusionPipeline) -> None:
        adapter = self.adapter_name  # its name in the pipeline's LoRA layers too
        taken = {name for names in pipe.get_list_adapters().values() for name in names}
        if adapter in taken:
            raise ValueError(f"lift {self.name!r}: the pipeline already has a LoRA adapter named {adapter!r}; pass "
                             "another `adapter_name`.")
        pipe.load_lora_weights(str(self.path), adapter_name=adapter)
        if self.fuse:
            # the weights fusing changes, as they were (on their device: switching the lift off copies them back)
            self._saved = [(layer, layer.weight.detach().clone()) for layer in _lora_base_layers(pipe, adapter)] \
                if self.keep_originals else []
            pipe.fuse_lora(adapter_names=[adapter], lora_scale=self.scale)
            pipe.delete_adapters(adapter)  # the merged weights stay; this adapter's LoRA weights go
            unload_empty_lora_layers(pipe)  # and the emptied LoRA layers, which still cost a call per layer and step

    def lora_adapters(self) -> dict[str, float]:
        return {} if self.fuse else {self.adapter_name: self.scale * self.weight}

    def set_weight(self, weight: float) -> None:
        if self.fuse and weight != 1:
            raise ValueError(f"lift {self.adapter_name!r} is a LoRA fused into the weights at scale {self.scale:g}; its "
                             "weight is 1 (on) or 0 (off). Load it with fuse=False to weigh it.")
        self.weight = float(weight)

    def set_active(self, pipe: DiffusionPipeline, active: bool) -> None:
        if not self.fuse or active == self._active:
            return
        if not self._saved:
            raise ValueError(f"lift {self.adapter_name!r} is a LoRA fused without keeping the weights it changed "
                             "(reversible=False); load the pipeline again instead.")
        with torch.no_grad():  # swap the weights in use with the kept ones
            for i, (layer, kept) in enumerate(self._saved):
                in_use = layer.weight.detach().clone()
                layer.weight.copy_(kept)
                self._saved[i] = (layer, in_use)
        self._active = active

    def remove(self, pipe: DiffusionPipeline) -> None:
        if not self.fuse:
            pipe.delete_adapters(self.adapter_name)
            unload_empty_lora_layers(pipe)
            return
        self.set_active(pipe, False)
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
    """The rule-based baseline of prompt refinement: append fixed quality keywords to every prompt.

        >>> import promptlift
        >>> promptlift.KeywordsLift("keywords", None, keywords="8k, masterpiece").rewrite_prompts(["a red ball"])
        ['a red ball, 8k, masterpiece']
    """

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


register_lift("keywords", help="Baseline prompt expander: appends quality keywords (option `keywords`).",
              weights=False)(KeywordsLift)


def convert_lift_folder(folder: Path, lift_type: str | None = None) -> Path:
    """Write `folder`/lift_config.json for a folder written before the format (its type as its layout says, or
    `lift_type`; its base model from base_model.json); a folder that has one is left as it is. Returns the file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{str(folder)!r} is no folder; pass a lift folder.")
    if read_lift_config(folder) is not None:
        return folder / LIFT_CONFIG_FILE
    found = lift_type or lift_type_of(folder)
    load_plugins()
    if found not in LIFTS:
        raise ValueError(f"no lift {found!r} is registered; pass one of: {', '.join(sorted(LIFTS))}.")
    return write_lift_config(folder, found, read_base_model(folder), recorded_options(found, folder))
