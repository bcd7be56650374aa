"""promptlift: make pre-trained text-to-image diffusion models give high-quality images from plain prompts.

    import promptlift
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained("stable-diffusion-v1-5/stable-diffusion-v1-5")
    promptlift.load_lift(pipe, "runs/tc/best", adapter_name="tc")        # a folder, a Hub repo id or a LoRA file
    promptlift.load_lift(pipe, "user/sur-adapter-sd15", adapter_name="sur")
    promptlift.set_lifts(pipe, ["tc", "sur"], weights=[1.0, 0.5])
    image = pipe("a couple of boats as the sun goes down").images[0]
    promptlift.unload_lifts(pipe)

The names below import torch and diffusers on first use, so `import promptlift` itself stays light.
"""

from typing import TYPE_CHECKING

__version__ = "0.1.0"

from ._notices import quiet_third_party_notices as _quiet

_quiet()

# name -> the module that defines it
_LAZY = {
    # a pipeline and its lifts
    "load_pipeline": "promptlift.pipeline.loading",
    "load_lift": "promptlift.pipeline.lifted",
    "set_lifts": "promptlift.pipeline.lifted",
    "get_lifts": "promptlift.pipeline.lifted",
    "disable_lifts": "promptlift.pipeline.lifted",
    "unload_lifts": "promptlift.pipeline.lifted",
    "lift": "promptlift.pipeline.lifted",
    "unlift": "promptlift.pipeline.lifted",
    "bundle_lift": "promptlift.methods.registry",
    # the lifts
    "Lift": "promptlift.pipeline.contract",
    "LoraLift": "promptlift.pipeline.lifts",
    "ComponentLift": "promptlift.pipeline.lifts",
    "KeywordsLift": "promptlift.pipeline.lifts",
    "TextCraftorLift": "promptlift.methods.textcraftor",
    "SURAdapterLift": "promptlift.methods.sur_adapter",
    "RefinerLift": "promptlift.methods.refiner",
    # training them
    "train": "promptlift.methods.registry",
    "TextCraftorConfig": "promptlift.methods.textcraftor",
    "SURAdapterConfig": "promptlift.methods.sur_adapter",
    "RefinerConfig": "promptlift.methods.refiner",
    "QualityTuningConfig": "promptlift.methods.quality_tuning",
}

__all__ = ["__version__", *_LAZY]

if TYPE_CHECKING:  # the same names, for type checkers and the API reference
    from .methods.quality_tuning import QualityTuningConfig
    from .methods.refiner import RefinerConfig, RefinerLift
    from .methods.registry import bundle_lift, train
    from .methods.sur_adapter import SURAdapterConfig, SURAdapterLift
    from .methods.textcraftor import TextCraftorConfig, TextCraftorLift
    from .pipeline.lifted import disable_lifts, get_lifts, lift, load_lift, set_lifts, unlift, unload_lifts
    from .pipeline.contract import Lift
    from .pipeline.lifts import ComponentLift, KeywordsLift, LoraLift
    from .pipeline.loading import load_pipeline


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'promptlift' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
