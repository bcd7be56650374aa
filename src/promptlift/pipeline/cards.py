"""Model cards: a README.md beside every trained output saying what it is, what it was trained on, what it measured
and how to load it with and without promptlift."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..files import atomic_write_text
from .base_model import EMBEDDED_MODEL_NAME
from .lift_config import LORA_FILE

__all__ = ["METHOD_PAPERS", "MethodPaper", "model_card", "write_model_card"]


@dataclass(frozen=True)
class MethodPaper:
    title: str
    citation: str
    url: str
    changes: str


METHOD_PAPERS = {
    "sur-adapter": MethodPaper("SUR-adapter: Enhancing Text-to-Image Pre-trained Diffusion Models with Large Language "
                               "Models", "Zhong et al. 2023", "https://arxiv.org/abs/2305.05189",
                               "an adapter on the text encoder's output, applied between the encoder and the UNet"),
    "textcraftor": MethodPaper("TextCraftor: Your Text Encoder Can be Image Quality Controller", "Li et al. 2024",
                               "https://arxiv.org/abs/2403.18978", "the text encoder's weights (reward fine-tuning)"),
    "refiner": MethodPaper("A User-Friendly Framework for Generating Model-Preferred Prompts in Text-to-Image "
                           "Synthesis (UF-FGTG)",
                           "Hei et al. 2024", "https://arxiv.org/abs/2402.12760",
                           "nothing in the model: a separate model rewrites the prompt"),
    "quality-tuning": MethodPaper("Emu: Enhancing Image Generation Models Using Photogenic Needles in a Haystack",
                                  "Dai et al. 2023", "https://arxiv.org/abs/2309.15807",
                                  "the UNet's weights (fine-tuned on a few thousand curated images)"),
}


def _loading(method: str, folder: Path, base: str) -> list[str]:
    """How to load `folder` without promptlift, by what it holds."""
    if (folder / LORA_FILE).is_file():
        return ["A diffusers LoRA: `pipe.load_lora_weights(FOLDER)` on a pipeline of the base model "
                "(`promptlift export lora` writes the kohya/A1111 file ComfyUI and A1111 load)."]
    lines = []
    for name, cls in (("unet", "UNet2DConditionModel"), ("text_encoder", "CLIPTextModel"),
                      ("text_encoder_2", "CLIPTextModelWithProjection")):
        if (folder / name / "config.json").is_file():
            config = json.loads((folder / name / "config.json").read_text())
            dtype = config.get("dtype") or config.get("torch_dtype")
            lines.append(f"`{cls}.from_pretrained(FOLDER/{name}, torch_dtype=torch.float32)` (saved in {dtype or 'float32'}: "
                         "pass the dtype of the pipeline it joins), then `pipe.{name} = ...`; or `promptlift export "
                         "checkpoint` for a single file A1111 and ComfyUI load.")
    if lines:
        return lines
    return ["Needs promptlift: this lift works between the text encoder and the UNet (or on the prompt text), which "
            "no diffusers pipeline call does by itself."]


def model_card(folder: Path, method: str, base: dict, metrics: dict | None = None, recipe: str | None = None) -> str:
    """The README.md text of a trained output in `folder`."""
    paper = METHOD_PAPERS.get(method)
    name = base.get("pretrained_model_name_or_path", "unknown")
    lines = ["---", "library_name: promptlift", f"base_model: {name}", "tags:", "- promptlift", f"- {method}",
             "- stable-diffusion", "- text-to-image", "---", "", f"# {method} for {name}", ""]
    if paper:
        lines += [f"Trained with promptlift's `{method}` ({paper.citation}, [{paper.title}]({paper.url})). It changes "
                  f"{paper.changes}.", ""]
    lines += ["## Base model", "", "| | |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in base.items()]
    if metrics:
        lines += ["", "## Held-out check", "", "Measured by the trainer's held-out check against the base model "
                  "(`eval.json`; the prompts, judge and seeds are in the recipe):", "", "| metric | value |", "|---|---|"]
        lines += [f"| {key} | {value:.4g} |" if isinstance(value, float) else f"| {key} | {value} |"
                  for key, value in metrics.items() if not isinstance(value, (dict, list))]
    if recipe:
        lines += ["", "## Recipe", "", "```yaml", recipe.strip(), "```"]
    embedded = name == EMBEDDED_MODEL_NAME  # loaded by default, by no name
    lines += ["", "## Loading", "", "With promptlift (FOLDER: this folder, or the Hub repo id it is uploaded to):", "",
              "```bash",
              f"promptlift generate{'' if embedded else f' --model {name}'} --lift {method}=FOLDER "
              "\"a couple of boats as the sun goes down\"",
              "```", "", "```python", "import promptlift", "",
              f"pipe = promptlift.load_pipeline({'' if embedded else repr(name)})  # or the diffusers pipeline you loaded",
              "promptlift.load_lift(pipe, \"FOLDER\")",
              "image = pipe(\"a couple of boats as the sun goes down\").images[0]",
              "```", "", "Without promptlift:", ""]
    lines += [f"- {line}" for line in _loading(method, Path(folder), name)]
    return "\n".join(lines) + "\n"


def write_model_card(folder: Path, method: str, base: dict, metrics: dict | None = None, recipe: str | None = None) -> Path:
    """Write `folder`/README.md (atomically)."""
    return atomic_write_text(Path(folder) / "README.md", model_card(folder, method, base, metrics, recipe))
