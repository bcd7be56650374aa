"""Load any diffusers Stable Diffusion pipeline and apply promptlift's "lifts" to it.

A *lift* is a post-training change to a pipeline. It may swap components (a tuned text encoder,
quality-tuned UNet weights, a LoRA), rewrite prompts (a prompt refiner), or edit the prompt
embeddings before they reach the UNet (an adapter). Every lift reaches the pipeline through
one of those three seams, so a lifted pipeline is still a plain diffusers pipeline called with
``prompt_embeds``. Lifts are chosen by name from a registry (``--lift NAME[=PATH]``).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable, Sequence

import torch
from diffusers import DiffusionPipeline, StableDiffusionPipeline, StableDiffusionXLPipeline

from .registry import check_registration, parse_named_options
from .utils import check_device, default_device, resolve_dtype

__all__ = [
    "LIFTS",
    "LIFTED_STACK",
    "Lift",
    "LiftSpec",
    "PromptEmbeds",
    "SUPPORTED_PIPELINES",
    "apply_lifts",
    "check_prompts",
    "default_model_path",
    "encode_prompts",
    "join_prompt",
    "load_component_strict",
    "lifted_specs",
    "load_lifted_pipeline",
    "load_lifts",
    "load_pipeline",
    "parse_lift",
    "parse_lift_options",
    "plus_edits",
    "prompt_padding_mask",
    "register_lift",
    "rewrite_prompts",
    "run_pipeline",
    "swapped",
]

SUPPORTED_PIPELINES = (StableDiffusionPipeline, StableDiffusionXLPipeline)
# diffusers renamed `torch_dtype` to `dtype` (the old name warns); older releases know only `torch_dtype`
_DTYPE_KWARG = "dtype" if hasattr(importlib.import_module("diffusers.utils.deprecation_utils"), "_resolve_dtype") else "torch_dtype"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def default_model_path() -> Path | None:
    """The embedded default pipeline shipped with the package, or None when it is not installed."""
    path = Path(__file__).parent / "bundle" / "pipeline"
    return path if (path / "model_index.json").is_file() else None


MODEL_DEFAULTS_FILE = "promptlift.json"  # beside model_index.json; diffusers ignores it
FALLBACK_GUIDANCE_SCALE = 7.5  # diffusers' default for Stable Diffusion


def recommended_guidance_scale(model: str | Path | None) -> float:
    """The guidance scale a pipeline folder recommends in its promptlift.json (the embedded model records the
    scale measured best for it), else diffusers' 7.5."""
    folder = Path(model).expanduser() if model is not None else default_model_path()
    defaults = folder / MODEL_DEFAULTS_FILE if folder is not None else None
    if defaults is not None and defaults.is_file():
        return float(json.loads(defaults.read_text()).get("guidance_scale", FALLBACK_GUIDANCE_SCALE))
    return FALLBACK_GUIDANCE_SCALE


def _check_model_source(source: str) -> None:
    """Raise a clear error for a local path that cannot be a diffusers pipeline folder."""
    path = Path(source).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ValueError(
                f"`model` {source!r} is a file, not a diffusers pipeline folder. Pass a folder holding "
                "model_index.json (a single .safetensors/.ckpt checkpoint must first be converted with "
                "diffusers' `from_single_file(...).save_pretrained(DIR)`)."
            )
        if not (path / "model_index.json").is_file():
            raise ValueError(
                f"`model` {source!r} is not a diffusers pipeline folder (no model_index.json in it). "
                "Pass the folder written by `save_pretrained`, or a hub id such as "
                "'stable-diffusion-v1-5/stable-diffusion-v1-5'."
            )
    elif not _HUB_ID.match(source):
        raise ValueError(
            f"`model` {source!r} does not exist and is not a hub id. Pass a local diffusers pipeline "
            "folder or a hub id of the form 'owner/name'."
        )


def load_pipeline(
    pretrained_model_name_or_path: str | Path | None = None,
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = "auto",
    lifts: Sequence[Lift] = (),
    **from_pretrained_kwargs,
) -> DiffusionPipeline:
    """Load a Stable Diffusion 1.x / 2.x / SDXL pipeline from a hub id or a local folder.

    Args:
        pretrained_model_name_or_path: hub id or local folder; None means the embedded default.
        device: where to run; default CUDA when present, else MPS, else CPU.
        dtype: "auto" (fp32 on CPU, fp16 on GPU), a dtype name, or a torch dtype.
        lifts: lifts whose component swaps are applied after loading (see `load_lifts`).
        **from_pretrained_kwargs: passed to `DiffusionPipeline.from_pretrained` (e.g. `variant`).

    v-prediction (SD 2.x 768) needs nothing special: the scheduler config carries `prediction_type`.
    """
    if pretrained_model_name_or_path is None:
        pretrained_model_name_or_path = default_model_path()
        if pretrained_model_name_or_path is None:
            raise ValueError(
                "no `model` given and the embedded default bundle is not installed; pass `--model` "
                "with a diffusers pipeline folder or hub id (or build one with `promptlift tiny-pipeline`)."
            )
    source = str(pretrained_model_name_or_path)
    _check_model_source(source)
    device = check_device(device) if device is not None else default_device()
    torch_dtype = resolve_dtype(dtype, device)
    try:
        pipe = DiffusionPipeline.from_pretrained(source, **{_DTYPE_KWARG: torch_dtype}, **from_pretrained_kwargs)
    except (OSError, ValueError) as e:
        raise ValueError(
            f"could not load `model` {source!r}: {e}\nCheck the hub id or folder; offline "
            "(HF_HUB_OFFLINE=1) a hub id loads only from the local cache."
        ) from e
    if not isinstance(pipe, SUPPORTED_PIPELINES):
        names = ", ".join(c.__name__ for c in SUPPORTED_PIPELINES)
        raise ValueError(f"`model` {source!r} is a {type(pipe).__name__}; promptlift supports {names}.")
    pipe.to(device)
    apply_lifts(pipe, lifts)
    return pipe


# ---------------------------------------------------------------------------------------------
# Prompt embeddings: the seam through which adapters and refiners reach the UNet.


@dataclass
class PromptEmbeds:
    """The embedding keyword arguments of a Stable Diffusion (XL) pipeline call."""

    prompt_embeds: torch.Tensor  # (B, L, D)
    negative_prompt_embeds: torch.Tensor | None = None  # (B, L, D), present with CFG
    pooled_prompt_embeds: torch.Tensor | None = None  # (B, D2), SDXL only
    negative_pooled_prompt_embeds: torch.Tensor | None = None  # (B, D2), SDXL with CFG
    negative_prompt: str | list[str] | None = field(default=None, metadata={"kwarg": False})  # the text, for lifts that re-encode
    # What the lifts' edits are measured against (see `encode_prompts`): the pipeline's encoders' output before any
    # edit, and the base model's encoders' output (they differ when a lift swapped an encoder).
    encoded: PromptEmbeds | None = field(default=None, repr=False, metadata={"kwarg": False})
    base_fn: Callable[[], PromptEmbeds] | None = field(default=None, repr=False, metadata={"kwarg": False})
    # the user's prompts when a lift rewrote them (a refiner), and how the base model encodes those
    user_prompts: list[str] | None = field(default=None, repr=False, metadata={"kwarg": False})
    user_base_fn: Callable[[], PromptEmbeds] | None = field(default=None, repr=False, metadata={"kwarg": False})

    TENSORS = ("prompt_embeds", "negative_prompt_embeds", "pooled_prompt_embeds", "negative_pooled_prompt_embeds")

    def as_kwargs(self) -> dict[str, torch.Tensor]:
        """Keyword arguments for `pipe(...)`, leaving out what is absent."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.metadata.get("kwarg", True) and getattr(self, f.name) is not None}

    @property
    def base(self) -> PromptEmbeds:
        """The base model's embeddings of the same prompts (encoded on first use; `self.encoded` when no lift swapped
        an encoder). An embedding lift trained on the base model reads these, so it reads what it was trained on."""
        if self.base_fn is not None:
            self._base, self.base_fn = self.base_fn(), None
        return getattr(self, "_base", None) or self.encoded or self

    @property
    def user_base(self) -> PromptEmbeds:
        """The base model's embeddings of the user's prompts before any rewrite (`self.base` when none was rewritten):
        what an adapter that reads the user's words adapts, its change then added to the rewrite's."""
        if self.user_base_fn is not None:
            self._user_base, self.user_base_fn = self.user_base_fn(), None
        return getattr(self, "_user_base", None) or self.base

    def edits(self, reference: PromptEmbeds | None = None) -> dict[str, torch.Tensor | None]:
        """{field: how it differs from `reference` (default `encoded`: what the lifts so far changed)}: None where it is
        the reference's own tensor."""
        reference = reference or self.encoded or self
        return {name: None if getattr(self, name) is getattr(reference, name) else getattr(self, name) - getattr(reference, name)
                for name in self.TENSORS if getattr(self, name) is not None}


def plus_edits(tensor: torch.Tensor | None, edit: torch.Tensor | None) -> torch.Tensor | None:
    """`tensor + edit`, or `tensor` itself when there is no edit (so a lone lift gives exactly its own result)."""
    return tensor if edit is None or tensor is None else tensor + edit.to(tensor)


@contextlib.contextmanager
def swapped(pipe, modules: dict[str, torch.nn.Module]):
    """Temporarily set pipeline components (e.g. the original encoders, to encode as the base model does)."""
    saved = {name: getattr(pipe, name) for name in modules}
    try:
        for name, module in modules.items():
            setattr(pipe, name, module)
        yield pipe
    finally:
        for name, module in saved.items():
            setattr(pipe, name, module)


def join_prompt(head: str, tail: str) -> str:
    """`head, tail` (a final full stop of `head` dropped), either possibly empty: a prompt extended by a refiner or by
    appended keywords."""
    head, tail = head.strip().rstrip(" ,."), tail.strip().lstrip(",").strip()
    return f"{head}, {tail}" if head and tail else head or tail


def rewrite_prompts(prompts: list[str], lifts: Sequence[Lift] = ()) -> list[str]:
    """The prompts the pipeline is given: each lift's `rewrite_prompts` in turn (a refiner, a keyword expander)."""
    for lift in lifts:
        prompts = lift.rewrite_prompts(prompts)
    return prompts


def encode_prompts(
    pipe: DiffusionPipeline,
    prompts: list[str],
    *,
    negative_prompt: str | list[str] | None = None,
    do_classifier_free_guidance: bool = True,
    lifts: Sequence[Lift] = (),
    grad: bool = False,
    user_prompts: Sequence[str] | None = None,
) -> PromptEmbeds:
    """Encode prompts with the pipeline's own text encoder(s), then let each lift edit the result, in order.

    How edits compose: every embedding lift is trained against the base model, so each reads the base model's
    embeddings (`embeds.base`: encoded with the original encoders when a lift swapped them, as TextCraftor does) and
    adds its own change to what the lifts before it made. A lift that swapped an encoder (TextCraftor) contributes
    `tuned - base`; the SUR-adapter contributes `adapted(base) - base`. A lift whose change is scheduled over the
    denoising steps (TextCraftor's hybrid schedule) must come after every other embedding lift, or the scheduled
    tensors would drop their edits: that order is refused.

    `user_prompts`: the prompts as the user wrote them, when `prompts` are their rewrites (`rewrite_prompts`); the
    SUR-adapter reads those, and the rewrite's change of the embedding (`base(rewritten) - base(user's)`) is added
    to the adapter's as any other lift's change is.

    `grad=True` keeps the autograd graph through the text encoders (for training them, as TextCraftor does).
    """
    originals = {n: m for lift in lifts for n, m in lift.original_encoders().items()}

    def encode_base(texts: list[str]) -> PromptEmbeds:
        with torch.set_grad_enabled(grad), swapped(pipe, {n: m.to(pipe.device) for n, m in originals.items()}):
            return _encode(pipe, texts, negative_prompt, do_classifier_free_guidance)

    with torch.set_grad_enabled(grad):
        embeds = _encode(pipe, prompts, negative_prompt, do_classifier_free_guidance)
        embeds.encoded = PromptEmbeds(**{n: getattr(embeds, n) for n in PromptEmbeds.TENSORS}, negative_prompt=negative_prompt)
        if originals:
            embeds.base_fn = lambda: encode_base(prompts)
        if user_prompts is not None and list(user_prompts) != list(prompts):
            if len(user_prompts) != len(prompts):
                raise ValueError(f"{len(user_prompts)} user prompts for {len(prompts)} rewritten ones; pass one each.")
            embeds.user_prompts = list(user_prompts)
            embeds.user_base_fn = lambda: encode_base(embeds.user_prompts)
        scheduled = None
        for lift in lifts:
            before = embeds.prompt_embeds
            embeds = lift.edit_prompt_embeds(pipe, embeds, prompts)
            if scheduled is not None and embeds.prompt_embeds is not before:
                raise ValueError(f"lift {lift.name!r} edits the prompt embeddings after {scheduled!r}, whose schedule "
                                 f"would replace them mid-sampling; list {scheduled!r} after {lift.name!r}.")
            if lift.callback_tensor_inputs:
                scheduled = lift.name
    return embeds


def _encode(pipe, prompts: list[str], negative_prompt, do_classifier_free_guidance: bool) -> PromptEmbeds:
    """The pipeline's own `encode_prompt`, as a PromptEmbeds."""
    device = pipe._execution_device
    if isinstance(pipe, StableDiffusionXLPipeline):
        pe, npe, pooled, npooled = pipe.encode_prompt(
            prompt=prompts,
            device=device,
            num_images_per_prompt=1,
            do_classifier_free_guidance=do_classifier_free_guidance,
            negative_prompt=negative_prompt,
        )
        return PromptEmbeds(pe, npe, pooled, npooled, negative_prompt)
    pe, npe = pipe.encode_prompt(prompts, device, 1, do_classifier_free_guidance, negative_prompt=negative_prompt)
    return PromptEmbeds(pe, npe, negative_prompt=negative_prompt)


def prompt_padding_mask(tokenizer, prompts: list[str], length: int) -> torch.Tensor:
    """(B, length) bool, True at the padding after each prompt's tokens (start and end tokens included)."""
    lengths = [min(len(ids), length) for ids in tokenizer(prompts, truncation=True, max_length=length).input_ids]
    return torch.arange(length)[None, :] >= torch.tensor(lengths)[:, None]


def run_pipeline(pipe: DiffusionPipeline, embeds: PromptEmbeds, lifts: Sequence[Lift] = (),
                 on_step: Callable[[int], None] | None = None, **kwargs):
    """`pipe(**embeds, **kwargs)` with the step callbacks of the lifts that schedule their tensors; `on_step(i)`
    is called after each denoising step (progress bars; raising there stops the generation)."""
    scheduled = [lift for lift in lifts if lift.callback_tensor_inputs]
    if scheduled or on_step is not None:
        def on_step_end(p, step, timestep, tensors):
            for lift in scheduled:
                tensors.update(lift.on_step_end(p, step, timestep, tensors))
            if on_step is not None:
                on_step(step)
            return tensors

        kwargs["callback_on_step_end"] = on_step_end
        kwargs["callback_on_step_end_tensor_inputs"] = sorted({n for lift in scheduled for n in lift.callback_tensor_inputs})
    return pipe(**embeds.as_kwargs(), **kwargs)


def _tokenizers(pipe: DiffusionPipeline) -> list:
    return [t for t in (getattr(pipe, "tokenizer", None), getattr(pipe, "tokenizer_2", None)) if t is not None]


def check_prompts(
    pipe: DiffusionPipeline, prompts: Sequence[str], on_long_prompt: str = "error"
) -> dict[int, str]:
    """Refuse empty prompts and, unless `on_long_prompt="truncate"`, prompts over the token limit.

    Returns {prompt index: the text that the text encoder will not see} for truncated prompts.
    """
    cut: dict[int, str] = {}
    for i, prompt in enumerate(prompts):
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError(f"prompt {i} is empty ({prompt!r}); give a non-empty text.")
        for tokenizer in _tokenizers(pipe):
            ids = tokenizer(prompt, truncation=False, verbose=False).input_ids
            limit = tokenizer.model_max_length
            if len(ids) <= limit:
                continue
            lost = tokenizer.decode(ids[limit - 1 : -1])
            if on_long_prompt != "truncate":
                raise ValueError(
                    f"prompt {i} has {len(ids)} tokens but the text encoder takes {limit} (with start/end), "
                    f"so this part would be cut: {lost!r}. Shorten the prompt, or pass "
                    "`--on_long_prompt truncate` to accept the cut."
                )
            cut[i] = lost
    return cut


# ---------------------------------------------------------------------------------------------
# Lifts and their registry.


class Lift:
    """A post-training change to a pipeline. Subclasses override what they change; the defaults change nothing.

    Attributes:
        name: the registry name it was loaded under.
        path: the weights it was loaded from, if any.
    """

    def __init__(self, name: str, path: Path | None = None):
        self.name = name
        self.path = path

    def apply(self, pipe: DiffusionPipeline) -> None:
        """Swap or patch pipeline components in place (tuned text encoder, UNet weights, LoRA)."""

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


def _register_method_lifts() -> None:
    """Import the methods, whose packages register their lifts (kept lazy: methods import this module)."""
    for method in ("quality_tuning", "refiner", "sur_adapter", "textcraftor"):
        importlib.import_module(f"promptlift.methods.{method}")


def parse_lift(spec: str) -> tuple[str, Path | None]:
    """`"NAME[=PATH]"` -> (NAME, PATH or None); NAME must be registered."""
    _register_method_lifts()
    name, _, path = spec.partition("=")
    name = name.strip()
    if name not in LIFTS:
        known = ", ".join(sorted(LIFTS)) or "(none)"
        raise ValueError(f"unknown lift {name!r} in `--lift {spec}`; registered lifts: {known}.")
    return name, (Path(path).expanduser() if path else None)


def load_lifts(specs: Sequence[str], options: Sequence[str] = ()) -> list[Lift]:
    """Build lifts from `NAME[=PATH]` strings, filling each missing PATH with the lift's default; `options`
    are `LIFT.KEY=VALUE` strings passed to the lift's factory."""
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
            path = lift_spec.default_path()
        if path is not None and not lift_spec.path_is_spec and not path.exists():
            raise ValueError(f"`--lift {spec}`: {str(path)!r} does not exist; pass NAME=PATH with the lift's weights.")
        lifts.append(lift_spec.factory(name, path, **_typed_options(lift_spec, parsed.get(name, {}))))
    return lifts


def _typed_options(spec: LiftSpec, options: dict) -> dict:
    """Lift options converted to the factory's annotated types (a float must be finite), named on error."""
    import typing

    from .config import coerce

    try:
        hints = typing.get_type_hints(spec.factory)
    except (NameError, TypeError):
        hints = {}
    return {key: coerce(value, hints[key], f"--lift_option {spec.name}.{key}") if key in hints else value
            for key, value in options.items()}


# The whole product, in the order the lifts compose (see `encode_prompts`): the refiner rewrites the prompt that every
# other lift then reads; quality-tuning swaps the UNet; the SUR-adapter edits the base model's embedding;
# TextCraftor adds its encoder's change last, since its hybrid schedule hands tensors over mid-sampling.
LIFTED_STACK = ("refiner", "quality-tuning", "sur-adapter", "textcraftor")


def lifted_specs(specs: Sequence[str] = ()) -> list[str]:
    """`--lift` specs of the lifted stack: each of LIFTED_STACK, in that order, with its default weights unless
    `specs` names it with other ones (`NAME=PATH`); lifts of `specs` outside the stack follow."""
    given = {parse_lift(spec)[0]: spec for spec in specs}
    return [given.get(name, name) for name in LIFTED_STACK] + [s for n, s in given.items() if n not in LIFTED_STACK]


def load_lifted_pipeline(pretrained_model_name_or_path: str | Path | None = None, *, lifts: Sequence[str] = (),
                         lift_options: Sequence[str] = (), **kwargs) -> tuple[DiffusionPipeline, list[Lift]]:
    """(pipeline, lifts) with the whole stack applied: the bundle's refiner, quality-tuning, SUR-adapter and
    TextCraftor weights, or those `lifts` names (`NAME=PATH`); `kwargs` go to `load_pipeline`. Pass the lifts to
    `rewrite_prompts`, `encode_prompts` and `run_pipeline` (or to `generation.generate`)."""
    loaded = load_lifts(lifted_specs(lifts), lift_options)
    return load_pipeline(pretrained_model_name_or_path, lifts=loaded, **kwargs), loaded


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
    This is how a TextCraftor-tuned text encoder or a quality-tuned UNet reaches a pipeline.
    """

    def __init__(self, name: str, path: Path | None, component: str):
        super().__init__(name, _require_path(name, path))
        self.component = component

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
        pipe.register_modules(**{self.component: new.eval()})

    def describe(self) -> dict:
        return {**super().describe(), "component": self.component}


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

    def apply(self, pipe: DiffusionPipeline) -> None:
        adapter = self.name.replace("-", "_")
        pipe.load_lora_weights(str(self.path), adapter_name=adapter)
        if self.fuse:
            pipe.fuse_lora(adapter_names=[adapter], lora_scale=self.scale)
            pipe.delete_adapters(adapter)  # the merged weights stay; the LoRA layers of this adapter go

    def describe(self) -> dict:
        return {**super().describe(), "fuse": self.fuse, "scale": self.scale}


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
