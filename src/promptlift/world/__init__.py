"""The procedural world: scenes with known ground truth, their renders and prompts, and datasets of them.

It lets every method run offline and be measured where the truth is known (docs/architecture.md, "Where the world sits").
"""

from .prompts import complex_prompt, literal_prompt, narrative_prompt, parse_prompt
from .render import render, render_image
from .scene import ATTRIBUTES, COLORS, COUNTS, FACTORS, KINDS, SETTINGS, Quality, Scene, aesthetic_score, sample_scene, scene_seed

__all__ = [
    "ATTRIBUTES", "COLORS", "COUNTS", "FACTORS", "KINDS", "SETTINGS", "Quality", "Scene", "aesthetic_score",
    "complex_prompt", "literal_prompt", "narrative_prompt", "parse_prompt", "render", "render_image",
    "sample_scene", "scene_seed",
]
