"""Load any diffusers Stable Diffusion pipeline and apply promptlift's "lifts" to it.

A *lift* is a post-training change to a pipeline. It may swap components (a tuned text encoder,
quality-tuned UNet weights, a LoRA), rewrite prompts (a prompt refiner), or edit the prompt
embeddings before they reach the UNet (an adapter). Every lift reaches the pipeline through
one of those three seams, so a lifted pipeline is still a plain diffusers pipeline called with
``prompt_embeds``. Lifts are chosen by name from a registry (``--lift NAME[=PATH]``).

loading.py loads pipelines; prompts.py encodes prompts and composes the lifts' embedding edits; lifts.py holds the
Lift base class, the registry and the lifts that need only weights; lifted.py puts lifts inside a pipeline
(`lift`, `unlift`) and is the one path a lifted generation takes; base_model.py records and checks which base model
a trained output belongs to.
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
    load_plugins,
    parse_lift,
    parse_lift_options,
    register_lift,
    unload_empty_lora_layers,
)
from .base_model import (BASE_MODEL_FILE, EMBEDDED_MODEL_NAME, base_model_record, check_fits, is_embedded_model, model_name,
                         read_base_model, text_encoder_fingerprint, write_base_model)
from .lifted import (LIFTABLE_PIPELINES, call_with_lifts, check_liftable, is_lifted, lift, model_guidance_scale,
                     pipeline_lifts, seeded_images, unlift)
from .loading import MODEL_DEFAULTS_FILE, SUPPORTED_PIPELINES, default_model_path, load_pipeline, recommended_guidance_scale
from .prompts import (
    PromptEmbeds,
    check_prompts,
    encode_prompts,
    join_prompt,
    plus_edits,
    prompt_padding_mask,
    rewrite_prompts,
    swapped,
)

__all__ = ["BASE_MODEL_FILE", "EMBEDDED_MODEL_NAME", "LIFTABLE_PIPELINES", "LIFTS", "MODEL_DEFAULTS_FILE",
           "SUPPORTED_PIPELINES", "ComponentLift", "KeywordsLift", "Lift", "LiftSpec", "LoraLift", "PromptEmbeds",
           "apply_lifts", "base_model_record", "call_with_lifts", "check_fits", "check_liftable", "check_prompts",
           "default_model_path", "encode_prompts", "is_embedded_model", "is_lifted", "join_prompt", "lift",
           "load_component_strict", "load_lifts", "load_pipeline", "load_plugins", "model_guidance_scale", "model_name",
           "parse_lift", "parse_lift_options", "pipeline_lifts", "plus_edits", "prompt_padding_mask",
           "read_base_model", "recommended_guidance_scale", "register_lift", "rewrite_prompts", "seeded_images",
           "swapped", "text_encoder_fingerprint", "unlift", "unload_empty_lora_layers", "write_base_model"]
