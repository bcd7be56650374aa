"""promptlift: make pre-trained text-to-image diffusion models give high-quality images from plain prompts.

    import promptlift
    pipe = promptlift.load_pipeline("stable-diffusion-v1-5/stable-diffusion-v1-5")  # or a folder or a .safetensors file
    promptlift.lift(pipe, ["textcraftor=runs/tc/best", "sur-adapter=runs/sur/best"])
    image = pipe("a couple of boats as the sun goes down").images[0]
    promptlift.unlift(pipe)

The names below import torch and diffusers on first use, so `import promptlift` itself stays light.
"""

__version__ = "0.1.0"

# name -> the module that defines it
_LAZY = {
    "lift": "promptlift.pipeline.lifted",
    "unlift": "promptlift.pipeline.lifted",
    "pipeline_lifts": "promptlift.pipeline.lifted",
    "load_pipeline": "promptlift.pipeline.loading",
    "load_lifted_pipeline": "promptlift.methods.stack",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'promptlift' has no attribute {name!r}")
