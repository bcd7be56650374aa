"""Lifts: post-training changes to a pipeline, and their registry (`--lift NAME[=PATH]`).

A lift reaches the pipeline through one of three seams: it swaps components (`apply`: a tuned text encoder, UNet
weights, a LoRA), rewrites prompts (`rewrite_prompts`: a refiner), or edits the prompt embeddings
(`edit_prompt_embeds`: an adapter). Here are the base class, the registry and the lifts that need only weights;
the methods (`promptlift.methods`) register theirs through the `promptlift.lifts` entry points.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import torch
from diffusers import DiffusionPipeline

from ..registry import check_registration, load_plugins, parse_named_options
from .prompts import join_prompt

if TYPE_CHECKING:
    from .prompts import PromptEmbeds

__all__ = ["LIFTS", "ComponentLift", "KeywordsLift", "Lift", "LiftSpec", "LoraLift", "apply_lifts",
           "load_component_strict", "load_lifts", "load_plugins", "parse_lift", "parse_lift_options",
           "register_lift", "unload_empty_lora_layers"]


class Lift:
    """A post-training change to a pipeline. Subclasses override what they change; the defaults change nothing.

    A lift is loaded into a pipeline with `promptlift.load_lift` (a folder, a Hub repo id, a LoRA file or a Lift
    object), saved with `save_pretrained` (its weights, `lift_config.json` and its model card) and read back with
    `Lift.from_pretrained`:

        >>> import promptlift
        >>> lift = promptlift.Lift.from_pretrained(promptlift.bundle_lift("textcraftor"))  # or a Hub repo id
        >>> lift.name, lift.options["alpha"]
        ('textcraftor', 1.0)

    Attributes:
        name: the lift's type, the registered name it is built by (`promptlift lifts` lists them).
        path: the weights it was loaded from, if any.
        adapter_name: the name it has in a pipeline (`load_lift(..., adapter_name=...)`; default: `name`).
        options: the options it was built with, its defaults included (what `save_pretrained` records).
        weight: how strongly it applies (`promptlift.set_lifts`); 1 is as trained.
    """

    # Set by `promptlift.load_lift(reversible=True)` before `apply`: keep what `remove` needs to undo in-place changes.
    keep_originals: bool = False
    weight: float = 1.0

    def __init__(self, name: str, path: Path | None = None):
        self.name = name
        self.path = path
        self.adapter_name = name
        self.options: dict = {}

    def apply(self, pipe: DiffusionPipeline) -> None:
        """Swap or patch pipeline components in place (tuned text encoder, UNet weights, LoRA)."""

    def remove(self, pipe: DiffusionPipeline) -> None:
        """Undo what `apply` changed inside components (`promptlift.unload_lifts`); swapped components are put back
        for it."""

    def set_active(self, pipe: DiffusionPipeline, active: bool) -> None:
        """Switch what `apply` changed inside components off or back on (`promptlift.disable_lifts`, `set_lifts`);
        swapped components are switched for it, LoRA adapters through `lora_adapters`."""

    def set_weight(self, weight: float) -> None:
        """How strongly the lift applies (`promptlift.set_lifts`): 1 as trained. A lift that cannot be reweighted
        takes 1 only (0 switches it off, which `set_lifts` does)."""
        if weight != 1:
            raise ValueError(f"lift {self.adapter_name!r} ({self.name}) applies at one strength: its weight is 1 (on) "
                             f"or 0 (off), got {weight}.")

    def lora_adapters(self) -> dict[str, float]:
        """{diffusers adapter name: its weight at lift weight 1} of the LoRA layers `apply` loaded (unfused); the
        pipeline's `set_adapters` is called with every active lift's, each times the lift's weight."""
        return {}

    @property
    def rewrites_prompts(self) -> bool:
        """Whether the lift rewrites the prompt's text (it then cannot take given `prompt_embeds`)."""
        return type(self).rewrite_prompts is not Lift.rewrite_prompts

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

    # -- the lift format ------------------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, source: str | Path, *, revision: str | None = None, subfolder: str | None = None,
                        cache_dir: str | Path | None = None, local_files_only: bool | None = None,
                        token: str | bool | None = None, **options) -> Lift:
        """The lift in `source`: a folder (with `lift_config.json`, or a layout written before it), a Hugging Face Hub
        repo id (downloaded into, or offline read from, huggingface_hub's cache: `revision`, `cache_dir`,
        `local_files_only` and `token` as the library takes them), or a LoRA `.safetensors` file. `subfolder`: the
        lift's folder inside `source`. `options` are the lift's keyword options, over the defaults the folder
        records; one the lift does not have is refused by name."""
        from .lift_config import lift_type_of, resolve_lift_source

        local = resolve_lift_source(source, revision=revision, subfolder=subfolder, cache_dir=cache_dir,
                                    local_files_only=local_files_only, token=token)
        if local.is_file() and local.suffix != ".safetensors":
            raise ValueError(f"lift file {str(local)!r} is no .safetensors LoRA; pass a LoRA file or a lift folder.")
        lift_type = "lora" if local.is_file() else lift_type_of(local)
        load_plugins()
        if lift_type not in LIFTS:
            raise ValueError(f"{str(source)!r} is a {lift_type!r} lift, which no installed package registers; install "
                             f"the package that adds it (registered lifts: {', '.join(sorted(LIFTS))}).")
        recorded = _recorded_options(lift_type, local, str(source))
        weights = local if LIFTS[lift_type].weights else None
        lift = build_lift(lift_type, weights, {**recorded, **options}, where=f"lift {str(source)!r}")
        if not isinstance(lift, cls):
            raise ValueError(f"{str(source)!r} holds a {lift_type!r} lift ({type(lift).__name__}), not a {cls.__name__}; "
                             "load it with `promptlift.Lift.from_pretrained`.")
        return lift

    def save_pretrained(self, save_directory: str | Path) -> Path:
        """Write the lift as a folder others load with `Lift.from_pretrained` or `promptlift.load_lift`: its weights
        (safetensors, as trained), `lift_config.json` (type, format version, base model, options) and README.md (its
        model card). The folder appears whole or not at all; one that holds other files than a lift's is refused."""
        import shutil

        from ..files import atomic_dir
        from .base_model import read_base_model
        from .lift_config import LIFT_CONFIG_FILE, LORA_FILE, write_lift_config

        target = Path(save_directory)
        if target.is_dir() and any(target.iterdir()) and not (target / LIFT_CONFIG_FILE).is_file():
            raise ValueError(f"{str(target)!r} holds files and no lift; pass an empty or new folder.")
        source = self.path
        if source is not None and source.is_dir() and source.resolve() == target.resolve():
            raise ValueError(f"lift {self.adapter_name!r} was loaded from {str(target)!r}; save it to another folder.")
        if source is None and LIFTS.get(self.name, None) is not None and LIFTS[self.name].weights:
            raise ValueError(f"lift {self.adapter_name!r} ({self.name}) holds its weights in memory only; save them "
                             "with its trainer, then load that folder.")
        rewritten = {LIFT_CONFIG_FILE, "README.md", "base_model.json"}
        with atomic_dir(target) as tmp:
            if source is not None and source.is_dir():
                for item in source.iterdir():
                    if item.name in rewritten or item.name.startswith("."):
                        continue
                    (shutil.copytree if item.is_dir() else shutil.copy2)(item, tmp / item.name)
            elif source is not None:
                shutil.copy2(source, tmp / LORA_FILE)
            base = read_base_model(source) if source is not None and source.is_dir() else None
            write_lift_config(tmp, self.name, base, self.options)
            card = source / "README.md" if source is not None and source.is_dir() else None
            if card is not None and card.is_file():
                shutil.copy2(card, tmp / "README.md")
            else:
                from .cards import write_model_card

                write_model_card(tmp, self.name, base or {})
        return target

    def push_to_hub(self, repo_id: str, *, token: str | bool | None = None, private: bool | None = None,
                    revision: str | None = None, commit_message: str | None = None) -> str:
        """Upload the lift as `save_pretrained` writes it (weights, lift_config.json, model card) to the Hub repo
        `repo_id`, created if needed; returns the commit's URL. Others load it with `promptlift.load_lift(pipe,
        repo_id)`."""
        import tempfile

        from huggingface_hub import HfApi

        with tempfile.TemporaryDirectory() as tmp:
            staged = self.save_pretrained(Path(tmp) / "lift")
            api = HfApi(token=token)
            api.create_repo(repo_id, private=private, exist_ok=True)
            info = api.upload_folder(repo_id=repo_id, folder_path=staged, revision=revision,
                                     commit_message=commit_message or f"promptlift {self.name} lift")
        return str(getattr(info, "commit_url", info))


@dataclass(frozen=True)
class LiftSpec:
    """A registered lift: how to build it from a path, and where its default weights live."""

    name: str
    factory: Callable[..., Lift]
    help: str
    default_path: Callable[[], Path | None] | None = None
    path_is_spec: bool = False  # PATH is a spec the factory parses (e.g. "a:0.7,b:0.3"), not one path
    weights: bool = True  # False: the lift takes no weights (a keyword expander)

    def options(self) -> list[str]:
        """The keyword options the factory takes (`--lift_option NAME.KEY=VALUE`)."""
        return list(self.option_defaults())

    def option_defaults(self) -> dict:
        """{option: its default} of the factory's keyword options."""
        import inspect

        params = list(inspect.signature(self.factory).parameters.values())[2:]
        return {p.name: p.default for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                and not p.name.startswith("_")}


LIFTS: dict[str, LiftSpec] = {}


def register_lift(name: str, *, help: str, default_path: Callable[[], Path | None] | None = None,
                  path_is_spec: bool = False, weights: bool = True):
    """Register a lift factory `(name, path, **options) -> Lift` under `name`; validated on registration."""

    def decorator(factory: Callable[..., Lift]):
        check_registration("lift", LIFTS, name, factory, help)
        LIFTS[name] = LiftSpec(name, factory, help, default_path, path_is_spec, weights)
        return factory

    return decorator


def parse_lift_options(options: Sequence[str]) -> dict[str, dict]:
    """{lift: {key: value}} from "LIFT.KEY=VALUE" strings (`--lift_option`)."""
    return parse_named_options(options, "lift option", "textcraftor.alpha=0.5")




def parse_lift(spec: str) -> tuple[str, Path | None]:
    """`"NAME[=PATH]"` -> (NAME, PATH or None); NAME must be registered. A spec that is a lift folder or a Hub repo id
    with a lift_config.json (no NAME) -> (its lift type, its local folder)."""
    load_plugins()
    name, sep, path = spec.partition("=")
    name = name.strip()
    if name in LIFTS:
        return name, (Path(path).expanduser() if path else None)
    if not sep:
        from .lift_config import lift_type_of, resolve_lift_source

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
    from .base_model import check_fits

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
    return build_lift(name, path, {**_recorded_options(name, path, f"--lift {spec}"), **options},
                      where=f"--lift_option {name}")


def _recorded_options(name: str, path: Path | None, where: str) -> dict:
    """The option defaults lift folder `path` records for lift `name`: its lift_config.json's (a folder of another
    lift is refused, as `where` names it), else what the older files of a folder written before the format say."""
    from .lift_config import read_lift_config, recorded_options

    if path is None or not path.is_dir():
        return {}
    config = read_lift_config(path)
    if config is None:
        return recorded_options(name, path)
    if config["lift_type"] != name:
        raise ValueError(f"{where}: {str(path)!r} is a {config['lift_type']!r} lift, not {name!r}; pass "
                         f"`--lift {config['lift_type']}={path}`.")
    return dict(config.get("options") or {})


def _lift_path(name: str, path: Path | None, spec: str, pipe: DiffusionPipeline | None) -> Path | None:
    """The weights of `--lift NAME[=PATH]`: PATH (a Hub repo id resolved to its cached folder), else the lift's
    default, which is the bundle's and refused on any model but the embedded one."""
    from .base_model import is_embedded_model, model_name, model_source
    from .lift_config import resolve_lift_source

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
    lift = spec.factory(name, path, **typed)
    lift.options = {**spec.option_defaults(), **typed}
    return lift


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
