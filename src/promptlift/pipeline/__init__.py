"""Load any diffusers Stable Diffusion pipeline and apply promptlift's "lifts" to it.

A *lift* is a post-training change to a pipeline. It may swap components (a tuned text encoder,
quality-tuned UNet weights, a LoRA), rewrite prompts (a prompt refiner), or edit the prompt
embeddings before they reach the UNet (an adapter). Every lift reaches the pipeline through
one of those three seams, so a lifted pipeline is still a plain diffusers pipeline called with
``prompt_embeds``. Lifts are chosen by name from a registry (``--lift NAME[=PATH]``).

loading.py loads pipelines; prompts.py encodes prompts and composes the lifts' embedding edits; lifts.py holds the
Lift base class, the registry and the lifts that need only weights.
"""

from .lifts import (
    LIFTS,
    ComponentLift,
    KeywordsLift,
    Lift,
    LiftSpec,
    LoraLift,
    apply_lifts,
    load_component_strict,
    load_lifts,
    parse_lift,
    parse_lift_options,
    register_lift,
)
from .loading import MODEL_DEFAULTS_FILE, SUPPORTED_PIPELINES, default_model_path, load_pipeline, recommended_guidance_scale
from .prompts import (
    PromptEmbeds,
    check_prompts,
    encode_prompts,
    seeded_images,
    join_prompt,
    plus_edits,
    prompt_padding_mask,
    rewrite_prompts,
    run_pipeline,
    swapped,
)

__all__ = ["LIFTS", "MODEL_DEFAULTS_FILE", "SUPPORTED_PIPELINES", "ComponentLift", "KeywordsLift", "Lift", "LiftSpec",
           "LoraLift", "PromptEmbeds", "apply_lifts", "check_prompts", "default_model_path", "encode_prompts", "seeded_images",
           "join_prompt", "load_component_strict", "load_lifts", "load_pipeline", "parse_lift", "parse_lift_options",
           "plus_edits", "prompt_padding_mask", "recommended_guidance_scale", "register_lift", "rewrite_prompts",
           "run_pipeline", "swapped"]
