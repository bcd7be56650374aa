"""The config of `promptlift export lora`. It imports neither torch nor diffusers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ExportLoraConfig:
    """Write a quality-tuning or TextCraftor output as a kohya/A1111 LoRA file (.safetensors) for A1111 and ComfyUI."""

    source: Path | None = field(default=None, metadata={
        "help": "A trained output folder: a LoRA (pytorch_lora_weights.safetensors), or full weights (text_encoder/, "
                "text_encoder_2/, unet/), which are turned into a LoRA by SVD of their change."})
    output: Path | None = field(default=None, metadata={"help": "The .safetensors file to write."})
    model: str | None = field(default=None, metadata={
        "help": "For full weights: the base model they changed; default: the one their base_model.json names."})
    model_config: str | None = field(default=None, metadata={"help": "For a single-file --model: its config folder."})
    rank: int = field(default=64, metadata={"help": "For full weights: the rank of the extracted LoRA.", "min": 1, "max": 4096})
    num_check_prompts: int = field(default=2, metadata={
        "help": "For full weights: prompts on which the LoRA's images are compared with the lift's (0: no check).",
        "min": 0, "max": 4})
    check_steps: int = field(default=10, metadata={"help": "Denoising steps of that check's images."})
    overwrite: bool = field(default=False, metadata={"help": "Replace an existing output file."})

    def __post_init__(self):
        if self.source is None or not Path(self.source).is_dir():
            raise ValueError(f"`source` {str(self.source)!r} is not a folder; pass a `promptlift train` output (its "
                             "best/ or final/).")
        if self.output is None or Path(self.output).suffix != ".safetensors":
            raise ValueError(f"`output` {str(self.output)!r} must be a .safetensors file to write.")
        if Path(self.output).exists() and not self.overwrite:
            raise ValueError(f"`output` {str(self.output)!r} exists; pass another path, or --overwrite to replace it.")
        if self.rank < 1:
            raise ValueError(f"`rank` must be >= 1, got {self.rank}.")
        if not 0 <= self.num_check_prompts <= 4 or self.check_steps < 1:
            raise ValueError(f"`num_check_prompts` must be 0-4 and `check_steps` >= 1, got {self.num_check_prompts} "
                             f"and {self.check_steps}.")
