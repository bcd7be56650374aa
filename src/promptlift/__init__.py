"""promptlift: make pre-trained text-to-image diffusion models give high-quality images from plain prompts."""

__version__ = "0.1.0"
