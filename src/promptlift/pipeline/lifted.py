"""Lifts inside a diffusers pipeline, the way diffusers' own adapters live there.

    pipe = StableDiffusionPipeline.from_pretrained(...)          # any SD 1.x/2.x or SDXL text-to-image pipeline
    promptlift.load_lift(pipe, "runs/tc/final", adapter_name="tc")   # a folder, a Hub repo id, a LoRA file, a Lift
    promptlift.load_lift(pipe, "user/my-sur-adapter", adapter_name="sur")
    promptlift.set_lifts(pipe, ["tc", "sur"], weights=[1.0, 0.5])
    image = pipe("a couple of boats as the sun goes down").images[0]
    with promptlift.disable_lifts(pipe):                          # the base model's image
        base = pipe("a couple of boats as the sun goes down").images[0]
    promptlift.unload_lifts(pipe)

No class swap: `type(pipe)` stays the class the user loaded. The lifts reach the pipeline through its own extension
points: components (a swapped text encoder or UNet), LoRA adapters (`load_lora_weights`, `set_adapters`), the
pipeline's `encode_prompt` (an instance attribute in front of the class's method: refiners rewrite `prompt` and
`prompt_2`, adapters edit the embeddings), and a UNet forward pre-hook for conditionings scheduled over the denoising
steps (TextCraftor's hybrid sampling). So every argument of the pipeline's `__call__` keeps working; `prompt_embeds`
given by the user reach the UNet as given (as diffusers' text-encoder LoRAs and textual inversions leave them), which
a lift that rewrites the prompt's text refuses, by name.

`call_with_lifts` generates through a list of lifts without loading them into the pipeline (a trainer's held-out
check, the evaluation): the same `encode_prompt` path, so the CLI, the app and `pipe(...)` give the same images.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import types
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from diffusers import DiffusionPipeline, StableDiffusionPipeline, StableDiffusionXLPipeline

from ..profiles import model_declaration
from ..registry import load_plugins
from .base_model import LIFTED_STATE, check_fits
from .contract import Lift
from .lift_registry import LIFTS
from .lifts import lift_for, load_lifts
from .prompts import encode_prompts, rewrite_prompts
from .stack import expand_stack

__all__ = ["LIFTABLE_PIPELINES", "call_with_lifts", "check_liftable", "disable_lifts", "get_lifts", "is_lifted", "lift",
           "load_lift", "model_guidance_scale", "pipeline_lifts", "seeded_images", "set_lifts", "unlift", "unload_lifts"]

# Exactly these classes: img2img, inpainting and the others share their encoders but not their call
LIFTABLE_PIPELINES = (StableDiffusionPipeline, StableDiffusionXLPipeline)
_STATE = LIFTED_STATE


@dataclass
class _Entry:
    """A lift loaded into a pipeline, what it swapped ({component: (the module before, the lift's)}) and its weight."""

    lift: Lift
    swapped: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    weight: float = 1.0


class _LiftState:
    """What a lifted pipeline carries: its lifts by adapter name, in the order they compose, and the seams' state."""

    def __init__(self, pipe, reversible: bool):
        self.entries: dict[str, _Entry] = {}
        self.reversible = reversible
        self.disabled = 0  # depth of `disable_lifts` blocks
        self.call: tuple[list[Lift], list[str] | None] | None = None  # a `call_with_lifts` in progress
        self.schedule = _Schedule(pipe)

    def active(self) -> list[Lift]:
        """The lifts a call applies now."""
        if self.call is not None:
            return self.call[0]
        return [] if self.disabled else [e.lift for e in self.entries.values() if e.weight != 0]


class _Schedule:
    """Conditionings scheduled over the denoising steps (`Lift.on_step_end`), through a UNet forward pre-hook: the
    pipeline's `encode_prompt` arms it, each UNet call is a denoising step (SD and SDXL call the UNet once a step,
    guided or not), and it disarms after the pipeline's last step."""

    def __init__(self, pipe):
        self.pipe = weakref.ref(pipe)
        self.lifts: list[Lift] = []
        self.calls = 0
        self.replaced: dict[str, torch.Tensor] = {}
        self.handle = None

    def arm(self, lifts: Sequence[Lift]) -> None:
        self.lifts = [each for each in lifts if each.callback_tensor_inputs]
        self.calls, self.replaced = 0, {}
        pipe = self.pipe()
        if self.lifts and self.handle is None and pipe is not None:
            self.handle = pipe.unet.register_forward_pre_hook(self._pre_hook, with_kwargs=True)

    def remove(self) -> None:
        if self.handle is not None:
            self.handle.remove()
            self.handle = None
        self.lifts = []

    def _pre_hook(self, module, args, kwargs):
        pipe = self.pipe()
        if not self.lifts or pipe is None:
            return None
        step, self.calls = self.calls, self.calls + 1
        added = dict(kwargs.get("added_cond_kwargs") or {})
        hidden = kwargs["encoder_hidden_states"] if "encoder_hidden_states" in kwargs else args[2]
        if step > 0:
            tensors = {"prompt_embeds": hidden, **({"add_text_embeds": added["text_embeds"]} if "text_embeds" in added else {})}
            timestep = kwargs.get("timestep", args[1] if len(args) > 1 else None)
            for each in self.lifts:
                self.replaced.update(each.on_step_end(pipe, step - 1, timestep, {**tensors, **self.replaced}))
        if step + 1 >= (getattr(pipe, "_num_timesteps", None) or float("inf")):
            self.lifts = []  # the last step: a later UNet call (another pipeline sharing it) is left alone
        if not self.replaced:
            return None
        args, kwargs = list(args), dict(kwargs)
        if "prompt_embeds" in self.replaced:
            if "encoder_hidden_states" in kwargs:
                kwargs["encoder_hidden_states"] = self.replaced["prompt_embeds"]
            else:
                args[2] = self.replaced["prompt_embeds"]
        if "add_text_embeds" in self.replaced:
            kwargs["added_cond_kwargs"] = {**added, "text_embeds": self.replaced["add_text_embeds"]}
        return tuple(args), kwargs


def check_liftable(pipe) -> None:
    """Refuse, by name, a pipeline class promptlift's lifts do not drive."""
    if type(pipe) not in LIFTABLE_PIPELINES:
        names = ", ".join(c.__name__ for c in LIFTABLE_PIPELINES)
        raise TypeError(f"`pipe` is a {type(pipe).__name__}; promptlift lifts text-to-image pipelines only ({names}). "
                        "Load the checkpoint with one of those (e.g. `StableDiffusionPipeline.from_pipe(pipe)`).")


def _state(pipe) -> _LiftState | None:
    return pipe.__dict__.get(_STATE)


def is_lifted(pipe) -> bool:
    """Whether `pipe` has lifts loaded."""
    return _state(pipe) is not None


def pipeline_lifts(pipe) -> list[Lift]:
    """The lifts loaded into `pipe`, in the order they compose (empty for any other pipeline)."""
    state = _state(pipe)
    return [entry.lift for entry in state.entries.values()] if state is not None else []


def get_lifts(pipe) -> dict[str, float]:
    """{adapter name: weight} of the lifts loaded into `pipe`, in the order they compose (weight 0: switched off by
    `set_lifts`), as diffusers' `get_active_adapters` names LoRAs.

    Args:
        pipe: any pipeline (one without lifts gives {}).

    Examples:
        >>> import promptlift
        >>> pipe = promptlift.load_pipeline()
        >>> promptlift.load_lift(pipe, "keywords", adapter_name="kw")
        >>> promptlift.get_lifts(pipe)
        {'kw': 1.0}
    """
    state = _state(pipe)
    return {name: entry.weight for name, entry in state.entries.items()} if state is not None else {}


def load_lift(pipe: DiffusionPipeline, source: str | Path | Lift, *, adapter_name: str | None = None,
              revision: str | None = None, subfolder: str | None = None, cache_dir: str | Path | None = None,
              local_files_only: bool | None = None, token: str | bool | None = None, reversible: bool = True,
              **options) -> None:
    """Load a lift into `pipe` (in place), after those already loaded; the ordinary `pipe(prompt, ...)` then applies it.

    Args:
        pipe: a StableDiffusionPipeline or StableDiffusionXLPipeline (`from_pretrained`, `from_single_file` or
            `promptlift.load_pipeline`).
        source: a lift folder (a trainer's output or `Lift.save_pretrained`'s), a Hugging Face Hub repo id, a LoRA
            `.safetensors` file, a Lift object, or a registered lift's name (`promptlift lifts`: the bundle's weights,
            for the embedded model only; "keywords" needs none).
        adapter_name: the lift's name in the pipeline (`set_lifts`, `unload_lifts`; a LoRA's diffusers adapter name);
            default: its type, numbered when taken ("lora", "lora_1").
        revision, subfolder, cache_dir, local_files_only, token: as huggingface_hub takes them, for a Hub `source`.
        reversible: keep what switching the lift off and unloading it need (the components it replaced, the weights a
            fused LoRA changed); False saves that memory and makes both refuse.
        options: the lift's keyword options (e.g. `alpha=0.5` for TextCraftor, `fuse=True` for a LoRA), over the
            defaults its folder records; one it does not have is refused by name.

    The lift's weights are checked against `pipe` (the base model they were trained on) before it is applied; a lift
    that fails to apply leaves the pipeline as it was.

    Examples:
        >>> import promptlift
        >>> pipe = promptlift.load_pipeline()                          # the embedded model, offline
        >>> promptlift.load_lift(pipe, "textcraftor", adapter_name="tc", alpha=0.5)
        >>> promptlift.load_lift(pipe, promptlift.bundle_lift("quality-tuning"), adapter_name="qt")
        >>> list(promptlift.get_lifts(pipe))
        ['tc', 'qt']
        >>> image = pipe("two red boats at sunset", num_inference_steps=2).images[0]
    """
    check_liftable(pipe)
    state = _state(pipe)
    if state is not None and adapter_name is not None and adapter_name in state.entries:
        raise ValueError(f"this pipeline already has a lift named {adapter_name!r}; pass another `adapter_name`, or "
                         f"`promptlift.unload_lifts(pipe, [{adapter_name!r}])` first.")
    _attach(pipe, _build(pipe, source, revision=revision, subfolder=subfolder, cache_dir=cache_dir,
                         local_files_only=local_files_only, token=token, options=options), adapter_name, reversible)


def _build(pipe, source, *, options: dict, **hub) -> Lift:
    """The Lift `source` names, checked against `pipe`."""
    if isinstance(source, Lift):
        if options:
            raise ValueError(f"options {sorted(options)} given with a Lift object; set them when building it.")
        built = source
    else:
        load_plugins()
        text = str(source)
        if text in LIFTS and not Path(text).exists():  # a registered lift's own weights (the bundle's)
            built = lift_for(text, None, options, pipe=pipe)
        else:
            built = Lift.from_pretrained(source, **hub, **options)
    check_fits(pipe, [(built.name, folder) for folder in built.folders()])
    return built


def _attach(pipe, each: Lift, adapter_name: str | None, reversible: bool) -> None:
    """Apply `each` to `pipe` under `adapter_name` and record it; on failure the pipeline is left as it was."""
    state = _state(pipe)
    created = state is None
    if created:
        state = _LiftState(pipe, reversible)
    elif reversible != state.reversible:
        raise ValueError(f"this pipeline's lifts were loaded with reversible={state.reversible}; load every lift with "
                         "the same `reversible`.")
    name = adapter_name or _free_name(state, each.name)  # `load_lift` refused a name taken, before building the lift
    each.adapter_name = name
    before = dict(pipe.components)
    each.keep_originals = reversible
    try:
        each.apply(pipe)
        swapped = {key: (before.get(key) if reversible else None, module) for key, module in pipe.components.items()
                   if before.get(key) is not module}
        state.entries[name] = _Entry(each, swapped)
        if created:
            _install(pipe, state)
        _sync_adapters(pipe, state)
    except Exception:
        state.entries.pop(name, None)
        changed = {key: module for key, module in before.items() if getattr(pipe, key, None) is not module}
        if changed:
            pipe.register_modules(**changed)
        if created or not state.entries:
            _uninstall(pipe, state)
        raise


def _free_name(state: _LiftState, base: str) -> str:
    name, k = base, 0
    while name in state.entries:
        k += 1
        name = f"{base}_{k}"
    return name


def _install(pipe, state: _LiftState) -> None:
    """Put the lifts' `encode_prompt` in front of the pipeline class's (an instance attribute) and the state on it."""
    pipe.__dict__[_STATE] = state
    pipe.__dict__["encode_prompt"] = types.MethodType(_lifted_encode_prompt, pipe)


def _uninstall(pipe, state: _LiftState) -> None:
    state.schedule.remove()
    pipe.__dict__.pop(_STATE, None)
    pipe.__dict__.pop("encode_prompt", None)


def set_lifts(pipe: DiffusionPipeline, names: str | Sequence[str], weights: float | Sequence[float] | None = None) -> None:
    """Apply the lifts `names` (adapter names) at `weights` (default 1 each) and switch the pipeline's other lifts off,
    as diffusers' `set_adapters` does for LoRAs. A LoRA lift's weight is its `set_adapters` weight; TextCraftor's
    multiplies its `alpha` (its move from the base encoder's embedding), the SUR-adapter's its change of the
    embedding; a lift that cannot be reweighted (a prompt rewriter, a swapped component, a fused LoRA) takes 1.

    Args:
        pipe: a pipeline with lifts loaded (`load_lift`).
        names: the adapter names of the lifts to apply (`get_lifts` lists them); every other lift is switched off.
        weights: one per name, or one for all (default 1); 0 switches a lift off as leaving it out does.

    Examples:
        >>> import promptlift
        >>> pipe = promptlift.load_pipeline()
        >>> promptlift.load_lift(pipe, "textcraftor", adapter_name="tc")
        >>> promptlift.load_lift(pipe, "keywords", adapter_name="kw")
        >>> promptlift.set_lifts(pipe, ["tc"], weights=[0.5])
        >>> promptlift.get_lifts(pipe)
        {'tc': 0.5, 'kw': 0.0}
    """
    state = _loaded_state(pipe, "set_lifts")
    if state.disabled:
        raise ValueError("`set_lifts` inside a `disable_lifts` block; set them after the block.")
    names = [names] if isinstance(names, str) else list(names)
    weights = [1.0] * len(names) if weights is None else [weights] * len(names) if isinstance(weights, (int, float)) \
        else [float(w) for w in weights]
    if len(weights) != len(names):
        raise ValueError(f"`set_lifts` got {len(names)} names and {len(weights)} weights; pass one weight per name.")
    _check_names(state, names, "set_lifts")
    if len(set(names)) != len(names):
        raise ValueError(f"`set_lifts` names a lift twice ({names}); name each once.")
    wanted = dict(zip(names, weights))
    for name, weight in wanted.items():
        if not weight == weight or weight < 0:  # NaN or negative
            raise ValueError(f"`set_lifts`: the weight of {name!r} must be a number >= 0, got {weight}.")
        if weight != 0:
            state.entries[name].lift.set_weight(weight)
    for name, entry in state.entries.items():
        _switch(pipe, entry, wanted.get(name, 0.0) != 0)
        entry.weight = wanted.get(name, 0.0)
    _sync_adapters(pipe, state)


@contextlib.contextmanager
def disable_lifts(pipe: DiffusionPipeline) -> Iterator[DiffusionPipeline]:
    """Within the block the pipeline is its base model (every lift switched off: its own components, weights and
    prompts); after it, the lifts apply again as they were.

    Args:
        pipe: a pipeline with lifts loaded (`load_lift`); the block yields it.

    Examples:
        >>> import promptlift
        >>> pipe = promptlift.load_pipeline()
        >>> promptlift.load_lift(pipe, "keywords")
        >>> with promptlift.disable_lifts(pipe):
        ...     base = pipe("two red boats at sunset", num_inference_steps=2).images[0]
    """
    state = _loaded_state(pipe, "disable_lifts")
    if state.disabled == 0:
        _switch_applied(pipe, state, False)
    state.disabled += 1
    _sync_adapters(pipe, state)
    try:
        yield pipe
    finally:
        state.disabled -= 1
        if state.disabled == 0:
            _switch_applied(pipe, state, True)
        _sync_adapters(pipe, state)


def _switch_applied(pipe, state: _LiftState, active: bool) -> None:
    """Switch the lifts `set_lifts` left on (weight not 0) off or back on."""
    for entry in state.entries.values():
        if entry.weight != 0:
            _switch(pipe, entry, active)


def unload_lifts(pipe: DiffusionPipeline, names: str | Sequence[str] | None = None) -> None:
    """Remove the lifts `names` (default: all) from `pipe`: their components, weights and LoRA layers go, the
    pipeline's own come back; with none left, `pipe` is the pipeline it was before any `load_lift`.

    Args:
        pipe: a pipeline with lifts loaded (`load_lift`), not with `reversible=False`.
        names: the adapter names of the lifts to remove, or one name; default: all of them.

    Examples:
        >>> import promptlift
        >>> pipe = promptlift.load_pipeline()
        >>> promptlift.load_lift(pipe, "keywords")
        >>> promptlift.unload_lifts(pipe)
        >>> promptlift.get_lifts(pipe)
        {}
    """
    state = _loaded_state(pipe, "unload_lifts")
    names = list(state.entries) if names is None else [names] if isinstance(names, str) else list(names)
    _check_names(state, names, "unload_lifts")
    if state.disabled:
        raise ValueError("`unload_lifts` inside a `disable_lifts` block; unload after the block.")
    if not state.reversible:
        raise ValueError("this pipeline was lifted with `reversible=False`, which keeps nothing to restore; load it "
                         "again instead.")
    for name in reversed([n for n in state.entries if n in names]):  # the last loaded first
        entry = state.entries[name]
        _switch(pipe, entry, False)
        entry.lift.remove(pipe)
        del state.entries[name]
    if state.entries:
        _sync_adapters(pipe, state)
    else:
        _uninstall(pipe, state)


def _loaded_state(pipe, what: str) -> _LiftState:
    state = _state(pipe)
    if state is None:
        raise ValueError(f"this {type(pipe).__name__} has no lifts; `promptlift.{what}` takes a pipeline that "
                         "`promptlift.load_lift` or `promptlift.lift` lifted.")
    return state


def _check_names(state: _LiftState, names: Sequence[str], what: str) -> None:
    unknown = [name for name in names if name not in state.entries]
    if unknown:
        raise ValueError(f"`{what}`: no lift named {', '.join(map(repr, unknown))} is loaded; loaded: "
                         f"{', '.join(map(repr, state.entries)) or '(none)'}.")


def _switch(pipe, entry: _Entry, active: bool) -> None:
    """Switch a lift's changes inside the pipeline on or off: its swapped components and what `set_active` keeps."""
    for key, (own, theirs) in entry.swapped.items():
        current, wanted = (own, theirs) if active else (theirs, own)
        if getattr(pipe, key, None) is wanted:
            continue
        if own is None:
            raise ValueError(f"lift {entry.lift.adapter_name!r} replaced `{key}` without keeping the pipeline's own "
                             "(reversible=False); load the pipeline again instead.")
        if getattr(pipe, key, None) is not current:
            raise ValueError(f"lift {entry.lift.adapter_name!r}: `{key}` was replaced again after it (by another lift "
                             "or by hand); switch or unload the later lift first.")
        pipe.register_modules(**{key: wanted})
    entry.lift.set_active(pipe, active)


def _sync_adapters(pipe, state: _LiftState) -> None:
    """The pipeline's LoRA adapters set to the lifts' that apply now, each at its weight (diffusers' `set_adapters`);
    with none applying, its LoRA layers switched off."""
    loaded = {}
    for entry in state.entries.values():
        on = entry.weight != 0 and not state.disabled
        loaded.update({name: weight if on else None for name, weight in entry.lift.lora_adapters().items()})
    if not loaded:
        return
    active = {name: weight for name, weight in loaded.items() if weight is not None}
    if active:
        pipe.enable_lora()
        pipe.set_adapters(list(active), adapter_weights=list(active.values()))
    else:
        pipe.disable_lora()


def lift(pipe: DiffusionPipeline, lifts: Sequence[str | Lift] = (), options: Sequence[str] = (), *,
         lifted: bool = False, reversible: bool = True) -> DiffusionPipeline:
    """Load a whole stack of lifts into `pipe` at once (`load_lift` for each, all or none); returns `pipe`.

    Args:
        pipe: a StableDiffusionPipeline or StableDiffusionXLPipeline.
        lifts: `NAME[=PATH]` specs (as `--lift`) or Lift objects. A bare NAME takes the bundle's weights only on the
            embedded model; another model needs the PATH of weights trained on it.
        options: `LIFT.KEY=VALUE` strings (as `--lift_option`).
        lifted: the whole lifted stack as `--lifted` builds it (its order, weights and options; `lifts` and `options`
            given beside it override the stack's).
        reversible: as `load_lift`'s.

    Every lift's weights are checked against `pipe` before any is applied.

    Examples:
        >>> import promptlift
        >>> pipe = promptlift.lift(promptlift.load_pipeline(), lifted=True)
        >>> list(promptlift.get_lifts(pipe))
        ['refiner', 'quality-tuning', 'sur-adapter', 'textcraftor']
    """
    check_liftable(pipe)
    if is_lifted(pipe):
        raise ValueError(f"this pipeline is already lifted ({', '.join(get_lifts(pipe))}); call "
                         "`promptlift.unlift(pipe)` first, pass every lift to one `promptlift.lift` call, or add one "
                         "with `promptlift.load_lift`.")
    specs = [s for s in lifts if isinstance(s, str)]
    if lifted:
        specs, options = expand_stack(specs, options)
    built = iter(load_lifts(specs, options, pipe=pipe) if specs or options else [])
    # in the order given (the order lifts compose in), the stack's after any Lift objects
    loaded = [each for each in lifts if isinstance(each, Lift)] + list(built) if lifted else \
        [each if isinstance(each, Lift) else next(built) for each in lifts]
    if not loaded:
        raise ValueError("no lift given; pass `lifts` (e.g. ['textcraftor=runs/tc/best']) or `lifted=True`.")
    try:
        for each in loaded:
            _attach(pipe, each, None, reversible)
    except Exception:
        if is_lifted(pipe) and reversible:
            unload_lifts(pipe)
        raise
    return pipe


def unlift(pipe: DiffusionPipeline) -> DiffusionPipeline:
    """Undo `lift`: every lift unloaded (`unload_lifts`), the pipeline's own components, weights and call back;
    returns `pipe`.

    Args:
        pipe: a pipeline `lift` (or `load_lift`) lifted, not with `reversible=False`.

    Examples:
        >>> import promptlift
        >>> pipe = promptlift.lift(promptlift.load_pipeline(), ["keywords"])
        >>> promptlift.unlift(pipe) is pipe, promptlift.get_lifts(pipe)
        (True, {})
    """
    if not is_lifted(pipe):
        raise ValueError(f"this {type(pipe).__name__} has no lifts to remove; `promptlift.unlift` takes a pipeline "
                         "that `promptlift.lift` lifted.")
    unload_lifts(pipe)
    return pipe


# -- the encode_prompt seam ----------------------------------------------------------------------------------------


def _lifted_encode_prompt(pipe, *args, **kwargs):
    """The pipeline class's `encode_prompt` through the lifts that apply now: `prompt` (and SDXL's `prompt_2`) rewritten
    by the refiners, encoded, edited by every embedding lift, then repeated per image by the class's own method."""
    own = type(pipe).encode_prompt
    state = _state(pipe)
    lifts = state.active() if state is not None else []
    if not lifts:
        return own(pipe, *args, **kwargs)
    bound = _signature(own).bind(pipe, *args, **kwargs)
    bound.apply_defaults()
    a = dict(bound.arguments)
    a.pop(next(iter(a)))  # self
    if a.get("prompt") is None:
        rewriter = next((each for each in lifts if each.rewrites_prompts), None)
        if rewriter is not None:
            raise ValueError(f"lift {rewriter.adapter_name!r} ({rewriter.name}) rewrites the prompt's text, so the "
                             "pipeline cannot take `prompt_embeds` while it applies; pass `prompt`, or switch it off "
                             f"(`promptlift.set_lifts` without it, or `promptlift.unload_lifts(pipe, "
                             f"[{rewriter.adapter_name!r}])`).")
        state.schedule.arm([])
        return own(pipe, **a)  # the user's embeddings, as given
    forced = state.call[1] if state.call is not None else None
    prompts = [a["prompt"]] if isinstance(a["prompt"], str) else list(a["prompt"])
    rewritten = rewrite_prompts(prompts, lifts) if forced is None else list(forced)
    extra = {}
    for key in ("prompt_2", "negative_prompt_2"):
        if a.get(key) is not None:
            texts = [a[key]] * len(prompts) if isinstance(a[key], str) else list(a[key])
            extra[key] = rewrite_prompts(texts, lifts) if key == "prompt_2" else texts
    negative = a.get("negative_prompt")
    if isinstance(negative, str):
        negative = [negative] * len(prompts)
    embeds = encode_prompts(pipe, rewritten, negative_prompt=negative,
                            do_classifier_free_guidance=a["do_classifier_free_guidance"], lifts=lifts,
                            user_prompts=prompts, lora_scale=a.get("lora_scale"), clip_skip=a.get("clip_skip"), **extra)
    state.schedule.arm(lifts)
    given = {key: a[key] for key in ("negative_prompt_embeds", "negative_pooled_prompt_embeds") if a.get(key) is not None}
    tensors = {**embeds.as_kwargs(), **given}
    keep = {"device", "num_images_per_prompt", "do_classifier_free_guidance"}
    return own(pipe, prompt=None, **{key: value for key, value in a.items() if key in keep}, **tensors)


@functools.lru_cache(maxsize=8)
def _signature(function) -> inspect.Signature:
    """A pipeline class's `encode_prompt` signature, read once (not at every call)."""
    return inspect.signature(function)


@contextlib.contextmanager
def _calling(pipe, lifts: Sequence[Lift], rewritten: Sequence[str] | None):
    """Within the block, the pipeline's `encode_prompt` applies `lifts` (whether or not they are loaded into it), with
    `rewritten` as the prompts' rewrites when given."""
    state = _state(pipe)
    installed = state is None
    if installed:
        state = _LiftState(pipe, reversible=True)
        _install(pipe, state)
    saved, state.call = state.call, (list(lifts), None if rewritten is None else list(rewritten))
    try:
        yield
    finally:
        state.call = saved
        if installed:
            _uninstall(pipe, state)
        else:
            state.schedule.lifts = []


def call_with_lifts(pipe: DiffusionPipeline, lifts: Sequence[Lift], prompt: str | list[str], *,
                    rewritten: Sequence[str] | None = None, guidance_scale: float | None = None, **kwargs):
    """`pipe(prompt, **kwargs)` through `lifts` (loaded into `pipe` or not: a trainer's in-memory lifts) instead of
    the lifts loaded into it, with `rewritten` as the prompts' rewrites when given (so they are made once); returns the
    pipeline's output."""
    if guidance_scale is not None:
        kwargs["guidance_scale"] = guidance_scale
    with _calling(pipe, lifts, rewritten):
        return pipe(prompt, **kwargs)


def _call_default(pipe, name: str):
    return inspect.signature(type(pipe).__call__).parameters[name].default


def model_guidance_scale(pipe) -> float:
    """The guidance scale the model recommends (its folder's promptlift.json), else the pipeline call's default."""
    declared = model_declaration(pipe).get("guidance_scale")
    return float(declared) if declared is not None else _call_default(pipe, "guidance_scale")


@torch.no_grad()
def seeded_images(pipe: DiffusionPipeline, prompts: Sequence[str], seeds: Sequence[int], lifts: Sequence[Lift] = (), *,
                  user_prompts: Sequence[str] | None = None, batch_size: int | None = None,
                  guidance_scale: float | None = None, negative_prompt: str | None = None, output_type: str = "pt",
                  **kwargs):
    """Image i of prompt i with its own CPU generator seeded `seeds[i]` (an image does not depend on its batch-mates),
    through `lifts` (default: the pipeline's loaded ones), `batch_size` prompts per pipeline call (default: all);
    `kwargs` go to the pipeline call. `prompts` are the user's (rewritten here by the lifts), or already rewritten
    when `user_prompts` are given. `guidance_scale` defaults to the model's (`model_guidance_scale`).
    Returns a (N, 3, H, W) tensor in [0, 1] for output_type "pt", else the pipeline's list of images."""
    lifts = list(lifts) or pipeline_lifts(pipe)
    guidance_scale = model_guidance_scale(pipe) if guidance_scale is None else guidance_scale
    pipe.set_progress_bar_config(disable=True)
    out = []
    step = batch_size or max(len(prompts), 1)
    for start in range(0, len(prompts), step):
        batch = list(prompts[start:start + step])
        users = list(user_prompts[start:start + step]) if user_prompts is not None else batch
        gens = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds[start:start + step]]
        out.append(call_with_lifts(pipe, lifts, users, rewritten=batch if user_prompts is not None else None,
                                   negative_prompt=negative_prompt, guidance_scale=guidance_scale, generator=gens,
                                   output_type=output_type, **kwargs).images)
    return torch.cat(out) if output_type == "pt" else [image for images in out for image in images]
