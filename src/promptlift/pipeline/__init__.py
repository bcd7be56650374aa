"""Load any diffusers Stable Diffusion pipeline and apply promptlift's "lifts" to it.

A *lift* is a post-training change to a pipeline. It may swap components (a tuned text encoder,
quality-tuned UNet weights, a LoRA), rewrite prompts (a prompt refiner), or edit the prompt
embeddings before they reach the UNet (an adapter). Every lift reaches the pipeline through
one of those three seams, so a lifted pipeline is still a plain diffusers pipeline called with
``prompt_embeds``. Lifts are chosen by name from a registry (``--lift NAME[=PATH]``).

The modules, bottom to top (each imports only those below it; tests/test_layers.py checks):
lift_registry.py (each lift type's factory and options), lift_config.py (the lift folder's lift_config.json, Hub
sources), base_model.py (which base model a trained output belongs to), cards.py (model cards), contract.py (the
lift contract: `Lift` and `PromptEmbeds`), prompts.py (prompt encoding and how the lifts' embedding edits compose),
lifts.py (lifts by name, and those that need only weights), stack.py (the lifted stack, as data), lifted.py (lifts
inside a pipeline's call: `lift`, `unlift`; the one path a lifted generation takes), loading.py (loading any
pipeline, lifted if asked).
"""

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "BASE_MODEL_FILE": ".base_model", "EMBEDDED_MODEL_NAME": ".base_model", "base_model_record": ".base_model",
    "check_fits": ".base_model", "is_embedded_model": ".base_model", "model_name": ".base_model",
    "read_base_model": ".base_model", "text_encoder_fingerprint": ".base_model", "write_base_model": ".base_model",
    "Lift": ".contract", "PromptEmbeds": ".contract", "LIFTS": ".lift_registry", "LiftSpec": ".lift_registry",
    "parse_lift_options": ".lift_registry", "register_lift": ".lift_registry", "LIFTABLE_PIPELINES": ".lifted",
    "call_with_lifts": ".lifted", "check_liftable": ".lifted", "is_lifted": ".lifted", "lift": ".lifted",
    "model_guidance_scale": ".lifted", "pipeline_lifts": ".lifted", "seeded_images": ".lifted",
    "unlift": ".lifted", "ComponentLift": ".lifts", "KeywordsLift": ".lifts", "LoraLift": ".lifts",
    "apply_lifts": ".lifts", "load_component_strict": ".lifts", "load_lifts": ".lifts", "parse_lift": ".lifts",
    "unload_empty_lora_layers": ".lifts", "MODEL_DEFAULTS_FILE": ".loading", "SUPPORTED_PIPELINES": ".loading",
    "default_model_path": ".loading", "load_pipeline": ".loading", "recommended_guidance_scale": ".loading",
    "check_prompts": ".prompts", "encode_prompts": ".prompts", "join_prompt": ".prompts", "plus_edits": ".prompts",
    "prompt_padding_mask": ".prompts", "rewrite_prompts": ".prompts", "swapped": ".prompts",
    "load_plugins": "..registry",
})

if TYPE_CHECKING:  # the same names, for type checkers
    from .base_model import (BASE_MODEL_FILE, EMBEDDED_MODEL_NAME, base_model_record, check_fits, is_embedded_model, model_name,
                             read_base_model, text_encoder_fingerprint, write_base_model)
    from .contract import Lift, PromptEmbeds
    from .lift_registry import LIFTS, LiftSpec, parse_lift_options, register_lift
    from .lifted import (LIFTABLE_PIPELINES, call_with_lifts, check_liftable, is_lifted, lift, model_guidance_scale,
                         pipeline_lifts, seeded_images, unlift)
    from .lifts import (ComponentLift, KeywordsLift, LoraLift, apply_lifts, load_component_strict, load_lifts, parse_lift,
                        unload_empty_lora_layers)
    from .loading import MODEL_DEFAULTS_FILE, SUPPORTED_PIPELINES, default_model_path, load_pipeline, recommended_guidance_scale
    from .prompts import check_prompts, encode_prompts, join_prompt, plus_edits, prompt_padding_mask, rewrite_prompts, swapped
    from ..registry import load_plugins


__all__ = ["BASE_MODEL_FILE", "EMBEDDED_MODEL_NAME", "LIFTABLE_PIPELINES", "LIFTS", "MODEL_DEFAULTS_FILE",
           "SUPPORTED_PIPELINES", "ComponentLift", "KeywordsLift", "Lift", "LiftSpec", "LoraLift", "PromptEmbeds",
           "apply_lifts", "base_model_record", "call_with_lifts", "check_fits", "check_liftable", "check_prompts",
           "default_model_path", "encode_prompts", "is_embedded_model", "is_lifted", "join_prompt", "lift",
           "load_component_strict", "load_lifts", "load_pipeline", "load_plugins", "model_guidance_scale", "model_name",
           "parse_lift", "parse_lift_options", "pipeline_lifts", "plus_edits", "prompt_padding_mask",
           "read_base_model", "recommended_guidance_scale", "register_lift", "rewrite_prompts", "seeded_images",
           "swapped", "text_encoder_fingerprint", "unlift", "unload_empty_lora_layers", "write_base_model"]
