"""Config of TextCraftor (Li et al. 2024, arXiv 2403.18978): reward fine-tuning of the text encoder."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ...profiles import judge_defaults
from ..config import MethodTrainConfig

__all__ = ["TextCraftorConfig", "parse_weighted"]


def parse_weighted(specs: list[str], what: str) -> list[tuple[str, float]]:
    """["name:0.5", "other"] -> [("name", 0.5), ("other", 1.0)]; the weight after the last ':' (default 1)."""
    out = []
    for spec in specs:
        name, sep, weight = spec.rpartition(":")
        if not sep:
            name, weight = spec, "1"
        try:
            out.append((name.strip(), float(weight)))
        except ValueError:
            raise ValueError(f"{what} {spec!r} must be NAME or NAME:WEIGHT with a number as WEIGHT.") from None
        if not out[-1][0]:
            raise ValueError(f"{what} {spec!r} has no name.")
    return out


@dataclass
class TextCraftorConfig(MethodTrainConfig):
    """Fine-tune the text encoder(s) (or a UNet LoRA) on prompts alone, by differentiable rewards back-propagated
    through the last `grad_steps` sampling steps. Defaults are the paper's (configs/textcraftor-paper.yaml).

        >>> import promptlift
        >>> cfg = promptlift.TextCraftorConfig(prompts="my-prompts.txt", output_dir=tmp / "tc", eval_inference_steps=25)
        >>> cfg.grad_steps, cfg.learning_rate, cfg.switch_step
        (5, 1e-06, 10)
    """

    prompts: str = field(default="", metadata={"help": "Training prompts: a .txt/.jsonl file, an imagefolder or a hub dataset id."})
    prompt_column: str = field(default="prompt", metadata={"help": "Column of the prompts (.jsonl, imagefolder metadata, hub dataset)."})
    max_train_prompts: int | None = field(default=None, metadata={"help": "Use the first N prompts only."})
    rewards: list[str] = field(default_factory=list, metadata={
        "help": "Training rewards as NAME:WEIGHT; repeatable. Loss = -sum(weight x batch-mean reward). Default: the "
                "paper's (clip-score:0.5, laion-aesthetic:1, pickscore:1, hpsv2:1); on the embedded model the world's "
                "(world-aesthetic-reward:1, world-clip:0.5, the bundle's recipe).", "aliases": ("reward",)})
    train: Literal["text_encoder", "unet_lora"] = field(
        default="text_encoder", metadata={"help": "What to tune: the text encoder(s), or a UNet LoRA (the paper's complementary step)."})
    text_encoders: list[str] = field(
        default_factory=lambda: ["text_encoder"],
        metadata={"help": "Encoders to tune (SDXL: text_encoder and/or text_encoder_2)."})
    use_lora: bool = field(default=False, metadata={"help": "Tune a LoRA of the encoder(s) instead of all their weights."})
    lora_rank: int = field(default=8, metadata={"help": "LoRA rank (use_lora, or train=unet_lora)."})
    lora_alpha: float = field(default=8.0, metadata={"help": "LoRA alpha."})
    num_inference_steps: int = field(default=25, metadata={"help": "Sampling steps of each training sample (DDIM by default)."})
    grad_steps: int = field(default=5, metadata={"help": "K: the last K steps run with gradient (the paper's 5)."})
    guidance_scale: float = field(default=7.5, metadata={"help": "Classifier-free guidance of the training samples."})
    scheduler: str = field(default="DDIMScheduler", metadata={"help": "Diffusers scheduler class for the training samples."})
    resolution: int | None = field(default=None, metadata={"help": "Sample size in pixels; default: the model's."})
    gradient_checkpointing: bool = field(default=True, metadata={"help": "Recompute each UNet step and the VAE decode in backward."})
    switch_step: int = field(default=10, metadata={"help": "Evaluation images: original encoder for the first N steps (the paper's 10 of 25)."})
    learning_rate: float = field(default=1e-6, metadata={"help": "Peak learning rate (AdamW; the paper's 1e-6)."})
    train_batch_size: int = field(default=32, metadata={"help": "Prompts per micro-batch (the paper's 32)."})
    max_train_steps: int = field(default=10_000, metadata={"help": "Optimizer steps in total."})
    lr_scheduler: Literal["constant", "constant_with_warmup", "linear", "cosine"] = field(
        default="constant", metadata={"help": "Learning-rate schedule after warm-up."})
    lr_warmup_steps: int = field(default=0, metadata={"help": "Linear warm-up steps."})

    def __post_init__(self):
        super().__post_init__()
        if not self.rewards:
            self.rewards = list(judge_defaults(self.pretrained_model_name_or_path).train_rewards)
        if not self.prompts:
            raise ValueError("`prompts` is empty; pass a .txt/.jsonl file, an imagefolder or a hub dataset id.")
        rewards = parse_weighted(self.rewards, "rewards")
        if not rewards:
            raise ValueError("no `reward` given; pass at least one NAME:WEIGHT.")
        from ...rewards import reward_spec

        for name, _ in rewards:
            if reward_spec(name).eval_only:
                raise ValueError(f"reward {name!r} is evaluation-only (kept out of training so that reward hacking "
                                 "shows in evaluation); train on another reward.")
        if self.eval_judge in {name for name, _ in rewards}:
            raise ValueError(f"`eval_judge` {self.eval_judge!r} is also a training reward; evaluate with a judge the "
                             "model was not trained on.")
        if not 1 <= self.grad_steps <= self.num_inference_steps:
            raise ValueError(f"`grad_steps` must be in [1, num_inference_steps={self.num_inference_steps}], got {self.grad_steps}.")
        if not 0 <= self.switch_step < self.eval_inference_steps:
            raise ValueError(f"`switch_step` must be in [0, eval_inference_steps={self.eval_inference_steps}), got {self.switch_step}.")
        bad = sorted(set(self.text_encoders) - {"text_encoder", "text_encoder_2"})
        if bad or not self.text_encoders:
            raise ValueError(f"`text_encoders` must name text_encoder and/or text_encoder_2, got {self.text_encoders}.")
