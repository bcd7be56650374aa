"""Prompt embeddings: the seam through which adapters and refiners reach the UNet, and how lifts' edits compose."""

from __future__ import annotations

import contextlib
from typing import Sequence

import torch
from diffusers import DiffusionPipeline, StableDiffusionXLPipeline

from .contract import Lift, PromptEmbeds


__all__ = ["PromptEmbeds", "check_prompts", "encode_prompts", "join_prompt", "plus_edits", "prompt_padding_mask",
           "rewrite_prompts", "swapped"]


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
    prompt_2: Sequence[str] | None = None,
    negative_prompt_2: Sequence[str] | None = None,
    lora_scale: float | None = None,
    clip_skip: int | None = None,
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

    `prompt_2`, `negative_prompt_2`: SDXL's prompts for its second text encoder (rewritten, when `prompts` are);
    `lora_scale`, `clip_skip`: as the pipeline's `encode_prompt` takes them.

    `grad=True` keeps the autograd graph through the text encoders (for training them, as TextCraftor does).
    """
    originals = {n: m for lift in lifts for n, m in lift.original_encoders().items()}
    # found once: diffusers' `_execution_device` walks every module of every component (milliseconds per call)
    device = pipe._execution_device

    extra = dict(prompt_2=prompt_2, negative_prompt_2=negative_prompt_2, lora_scale=lora_scale, clip_skip=clip_skip)

    def encode_base(texts: list[str]) -> PromptEmbeds:
        with torch.set_grad_enabled(grad), swapped(pipe, {n: m.to(device) for n, m in originals.items()}):
            return _encode(pipe, texts, negative_prompt, do_classifier_free_guidance, device, **extra)

    with torch.set_grad_enabled(grad):
        embeds = _encode(pipe, prompts, negative_prompt, do_classifier_free_guidance, device, **extra)
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


def _encode(pipe, prompts: list[str], negative_prompt, do_classifier_free_guidance: bool, device, *, prompt_2=None,
            negative_prompt_2=None, lora_scale=None, clip_skip=None) -> PromptEmbeds:
    """The pipeline class's own `encode_prompt` on `device` (not a lifted pipeline's, which calls this), as a
    PromptEmbeds."""
    encode = type(pipe).encode_prompt
    if isinstance(pipe, StableDiffusionXLPipeline):
        pe, npe, pooled, npooled = encode(
            pipe,
            prompt=prompts,
            prompt_2=prompt_2,
            device=device,
            num_images_per_prompt=1,
            do_classifier_free_guidance=do_classifier_free_guidance,
            negative_prompt=negative_prompt,
            negative_prompt_2=negative_prompt_2,
            lora_scale=lora_scale,
            clip_skip=clip_skip,
        )
        return PromptEmbeds(pe, npe, pooled, npooled, negative_prompt)
    if prompt_2 is not None or negative_prompt_2 is not None:
        raise ValueError(f"`prompt_2` and `negative_prompt_2` are SDXL's; this is a {type(pipe).__name__}.")
    pe, npe = encode(pipe, prompts, device, 1, do_classifier_free_guidance, negative_prompt=negative_prompt,
                     lora_scale=lora_scale, clip_skip=clip_skip)
    return PromptEmbeds(pe, npe, negative_prompt=negative_prompt)


def prompt_padding_mask(tokenizer, prompts: list[str], length: int) -> torch.Tensor:
    """(B, length) bool, True at the padding after each prompt's tokens (start and end tokens included)."""
    lengths = [min(len(ids), length) for ids in tokenizer(prompts, truncation=True, max_length=length).input_ids]
    return torch.arange(length)[None, :] >= torch.tensor(lengths)[:, None]


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
