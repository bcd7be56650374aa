"""Lifts inside a diffusers pipeline: `lift(pipe, ...)`, after which the ordinary `pipe(prompt, ...)` applies them.

A lifted pipeline is the same object with the same components; its class becomes a subclass of its own (same
name, so `save_pretrained` and `isinstance` see the pipeline it was) whose `__call__` runs every seam of its lifts:
the refiners' rewrite, the composed embedding edits (`encode_prompts`) and the lifts' step callbacks beside the
user's own. `call_with_lifts` is that path as a function: the CLI, `seeded_images`, the evaluation and the app all
generate through it, so there is one way lifts reach a pipeline.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from diffusers import DiffusionPipeline, StableDiffusionPipeline, StableDiffusionXLPipeline

from .lifts import Lift, load_lifts, load_plugins
from .prompts import encode_prompts, rewrite_prompts

__all__ = ["LIFTABLE_PIPELINES", "call_with_lifts", "check_liftable", "is_lifted", "lift", "model_guidance_scale",
           "pipeline_lifts", "register_lifted_stack", "seeded_images", "unlift"]

# Exactly these classes: img2img, inpainting and the others share their encoders but not their call
LIFTABLE_PIPELINES = (StableDiffusionPipeline, StableDiffusionXLPipeline)
_STATE = "_promptlift_state"  # the attribute a lifted pipeline carries


@dataclass
class _LiftState:
    lifts: list[Lift]
    base_class: type
    components: dict[str, Any] = field(default_factory=dict)  # the components before the lifts (reversible lifts)
    reversible: bool = True


# (specs, options) -> the whole stack's (specs, options): set by promptlift.methods.stack
_LIFTED_STACK: Callable[[list[str], Sequence[str]], tuple[list[str], list[str]]] | None = None


def register_lifted_stack(expand: Callable[[list[str], Sequence[str]], tuple[list[str], list[str]]]) -> None:
    """Set what `lift(pipe, lifted=True)` applies (the methods package registers its four-lift stack)."""
    global _LIFTED_STACK
    _LIFTED_STACK = expand


def check_liftable(pipe) -> None:
    """Refuse, by name, a pipeline class promptlift's lifts do not drive."""
    base = _base_class(pipe)
    if base not in LIFTABLE_PIPELINES:
        names = ", ".join(c.__name__ for c in LIFTABLE_PIPELINES)
        raise TypeError(f"`pipe` is a {base.__name__}; promptlift lifts text-to-image pipelines only ({names}). "
                        "Load the checkpoint with one of those (e.g. `StableDiffusionPipeline.from_pipe(pipe)`).")


def is_lifted(pipe) -> bool:
    return getattr(pipe, _STATE, None) is not None


def pipeline_lifts(pipe) -> list[Lift]:
    """The lifts a lifted pipeline applies (empty for any other pipeline)."""
    state = getattr(pipe, _STATE, None)
    return list(state.lifts) if state is not None else []


def lift(pipe: DiffusionPipeline, lifts: Sequence[str | Lift] = (), options: Sequence[str] = (), *,
         lifted: bool = False, reversible: bool = True) -> DiffusionPipeline:
    """Apply lifts to `pipe` in place, so that `pipe(prompt, ...)` generates through them; returns `pipe`.

    Args:
        pipe: a StableDiffusionPipeline or StableDiffusionXLPipeline (from `from_pretrained`, `from_single_file` or
            `promptlift.load_pipeline`).
        lifts: `NAME[=PATH]` specs (as `--lift`) or Lift objects. A bare NAME takes the bundle's weights only on the
            embedded model; another model needs the PATH of weights trained on it.
        options: `LIFT.KEY=VALUE` strings (as `--lift_option`).
        lifted: the whole lifted stack as `--lifted` builds it (its order, weights and options; `lifts` and `options`
            given beside it override the stack's).
        reversible: keep what `unlift` needs to restore the pipeline (the replaced components, the weights a fused
            LoRA changed, on their device); False saves that memory and makes `unlift` refuse.

    Every lift's weights are checked against `pipe` (their base_model.json) before any is applied.
    """
    check_liftable(pipe)
    if is_lifted(pipe):
        names = ", ".join(lift.name for lift in pipeline_lifts(pipe))
        raise ValueError(f"this pipeline is already lifted ({names}); call `promptlift.unlift(pipe)` first, or pass every "
                         "lift to one `promptlift.lift` call.")
    specs = [s for s in lifts if isinstance(s, str)]
    if lifted:
        load_plugins()  # promptlift.methods sets the stack
        if _LIFTED_STACK is None:
            raise ValueError("`lifted=True` needs the lifted stack, which promptlift.methods registers; it is not "
                             "installed with this package.")
        specs, options = _LIFTED_STACK(specs, options)
    built = iter(load_lifts(specs, options, pipe=pipe) if specs or options else [])
    # in the order given (the order lifts compose in), the stack's after any Lift objects
    loaded = [each for each in lifts if isinstance(each, Lift)] + list(built) if lifted else \
        [each if isinstance(each, Lift) else next(built) for each in lifts]
    if not loaded:
        raise ValueError("no lift given; pass `lifts` (e.g. ['textcraftor=runs/tc/best']) or `lifted=True`.")
    state = _LiftState(loaded, type(pipe), dict(pipe.components) if reversible else {}, reversible)
    applied = []
    try:
        for each in loaded:
            each.keep_originals = reversible
            each.apply(pipe)
            applied.append(each)
    except Exception:
        if reversible:  # a lift that fails half-way leaves the pipeline as it was
            _restore(pipe, applied, state.components)
        raise
    setattr(pipe, _STATE, state)
    pipe.__class__ = _lifted_class(state.base_class)
    return pipe


def unlift(pipe: DiffusionPipeline) -> DiffusionPipeline:
    """Undo `lift`: the pipeline's own components and weights back, its own `__call__`; returns `pipe`."""
    state = getattr(pipe, _STATE, None)
    if state is None:
        raise ValueError(f"this {type(pipe).__name__} has no lifts to remove; `promptlift.unlift` takes a pipeline "
                         "that `promptlift.lift` lifted.")
    if not state.reversible:
        raise ValueError("this pipeline was lifted with `reversible=False`, which keeps nothing to restore; load it "
                         "again instead.")
    _restore(pipe, state.lifts, state.components)
    pipe.__class__ = state.base_class
    delattr(pipe, _STATE)
    return pipe


def _restore(pipe, lifts: Sequence[Lift], components: dict[str, Any]) -> None:
    """Undo `lifts` (last first) and put back the components they replaced."""
    for each in reversed(lifts):
        each.remove(pipe)
    changed = {name: module for name, module in components.items() if getattr(pipe, name, None) is not module}
    if changed:
        pipe.register_modules(**changed)


def _base_class(pipe) -> type:
    state = getattr(pipe, _STATE, None)
    return state.base_class if state is not None else type(pipe)


_LIFTED_CLASSES: dict[type, type] = {}


def _lifted_class(base: type) -> type:
    """`base` with a `__call__` that generates through the pipeline's lifts (same name, one class per base)."""
    if base not in _LIFTED_CLASSES:
        signature = inspect.signature(base.__call__)

        def __call__(self, *args, **kwargs):
            bound = signature.bind(self, *args, **kwargs)
            arguments = dict(bound.arguments)
            arguments.pop(next(iter(signature.parameters)))  # self
            arguments.update(arguments.pop("kwargs", {}))
            if arguments.get("prompt") is None:
                raise ValueError("a lifted pipeline reads `prompt` (its lifts rewrite and edit it), got none; pass "
                                 "`prompt`, or call `promptlift.unlift(pipe)` to call it with `prompt_embeds`.")
            return call_with_lifts(self, pipeline_lifts(self), **arguments)

        __call__.__doc__ = (f"{base.__name__}.__call__ through promptlift's lifts (`promptlift.lift`); the arguments "
                            f"are the pipeline's own.\n\n{base.__call__.__doc__ or ''}")
        _LIFTED_CLASSES[base] = type(base.__name__, (base,), {"__call__": __call__, "__module__": base.__module__,
                                                              "_promptlift_lifted": True})
    return _LIFTED_CLASSES[base]


# The pipeline call's arguments the lifts take over (they make the embeddings from the prompt)
_EMBEDDING_ARGS = ("prompt_embeds", "negative_prompt_embeds", "pooled_prompt_embeds", "negative_pooled_prompt_embeds",
                   "prompt_2", "negative_prompt_2")


def call_with_lifts(pipe: DiffusionPipeline, lifts: Sequence[Lift], prompt: str | list[str], *,
                    rewritten: Sequence[str] | None = None, negative_prompt: str | list[str] | None = None,
                    guidance_scale: float | None = None, num_images_per_prompt: int | None = 1,
                    callback_on_step_end=None, callback_on_step_end_tensor_inputs: Sequence[str] | None = None,
                    **kwargs):
    """`pipe(prompt, ...)` through `lifts`: rewrite the prompts (unless `rewritten` gives their rewrites), encode
    them with every lift's edit, and run the pipeline's own call with the lifts' step callbacks, then the user's
    `callback_on_step_end`. `kwargs` are the pipeline call's other arguments; returns its output."""
    given = sorted(name for name in _EMBEDDING_ARGS if kwargs.get(name) is not None)
    if given:
        raise ValueError(f"a lifted pipeline makes its embeddings from `prompt` and `negative_prompt`; `{given[0]}` "
                         "cannot be given to it. Pass the text, or call `promptlift.unlift(pipe)` first.")
    kwargs = {k: v for k, v in kwargs.items() if k not in _EMBEDDING_ARGS}
    prompts = [prompt] if isinstance(prompt, str) else list(prompt)
    rewritten = rewrite_prompts(prompts, lifts) if rewritten is None else list(rewritten)
    if guidance_scale is None:
        guidance_scale = _call_default(pipe, "guidance_scale")
    if isinstance(negative_prompt, str):
        negative_prompt = [negative_prompt] * len(prompts)
    guided = guidance_scale > 1 and getattr(pipe.unet.config, "time_cond_proj_dim", None) is None
    embeds = encode_prompts(pipe, rewritten, negative_prompt=negative_prompt, do_classifier_free_guidance=guided,
                            lifts=lifts, user_prompts=prompts)
    scheduled = [each for each in lifts if each.callback_tensor_inputs]
    if scheduled:
        user_inputs = list(callback_on_step_end_tensor_inputs or getattr(callback_on_step_end, "tensor_inputs", None)
                           or (["latents"] if callback_on_step_end is not None else []))
        user_callback = callback_on_step_end

        def callback_on_step_end(p, step, timestep, tensors):
            for each in scheduled:
                tensors.update(each.on_step_end(p, step, timestep, tensors))
            if user_callback is not None:
                tensors.update(user_callback(p, step, timestep, tensors) or {})
            return tensors

        callback_on_step_end_tensor_inputs = sorted({*user_inputs, *(n for each in scheduled for n in each.callback_tensor_inputs)})
    if callback_on_step_end is not None:
        kwargs["callback_on_step_end"] = callback_on_step_end
        kwargs["callback_on_step_end_tensor_inputs"] = list(callback_on_step_end_tensor_inputs or ["latents"])
    call = _base_class(pipe).__call__
    return call(pipe, **embeds.as_kwargs(), guidance_scale=guidance_scale, num_images_per_prompt=num_images_per_prompt,
                **kwargs)


def _call_default(pipe, name: str):
    return inspect.signature(_base_class(pipe).__call__).parameters[name].default


def model_guidance_scale(pipe) -> float:
    """The guidance scale the model recommends (its folder's promptlift.json), else the pipeline call's default."""
    from .loading import MODEL_DEFAULTS_FILE, recommended_guidance_scale

    folder = getattr(pipe, "name_or_path", None)
    if folder and (Path(folder) / MODEL_DEFAULTS_FILE).is_file():
        return recommended_guidance_scale(folder)
    return _call_default(pipe, "guidance_scale")


@torch.no_grad()
def seeded_images(pipe: DiffusionPipeline, prompts: Sequence[str], seeds: Sequence[int], lifts: Sequence[Lift] = (), *,
                  user_prompts: Sequence[str] | None = None, batch_size: int | None = None,
                  guidance_scale: float | None = None, negative_prompt: str | None = None, output_type: str = "pt",
                  **kwargs):
    """Image i of prompt i with its own CPU generator seeded `seeds[i]` (an image does not depend on its batch-mates),
    through `lifts` (default: the lifted pipeline's own), `batch_size` prompts per pipeline call (default: all);
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
