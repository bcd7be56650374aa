"""Config of quality-tuning (Emu, Dai et al. 2023, arXiv 2309.15807)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ...profiles import content_profile
from ..config import MethodTrainConfig

__all__ = ["QualityTuningConfig"]


@dataclass
class QualityTuningConfig(MethodTrainConfig):
    """Supervised fine-tuning of the UNet (full or LoRA) on a small curated set of very aesthetic images (Emu).

        >>> import promptlift
        >>> cfg = promptlift.QualityTuningConfig(train_data_dir=data, output_dir=tmp / "qt", use_lora=True,
        ...                                      max_train_steps=1, eval_steps=0)  # data: `promptlift curate` output
        >>> cfg.lora_rank
        16
    """

    train_data_dir: Path | None = field(default=None, metadata={"help": "Curated imagefolder (metadata.jsonl), e.g. from `promptlift curate`."})
    caption_column: list[str] = field(default_factory=lambda: ["caption"], metadata={"help": "Caption column(s); one is drawn per sample."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Train on the N best-ranked curated images only (curation rank; else file order)."})
    use_lora: bool = field(default=False, metadata={"help": "Train a LoRA of the UNet instead of all its weights."})
    lora_rank: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: float = field(default=16.0, metadata={"help": "LoRA alpha."})
    resolution: int | None = field(default=None, metadata={"help": "Aspect-ratio buckets of about this many pixels squared (sides multiples of 64): each image resized and centre-cropped to its bucket, each batch from one bucket; default: every image at its own size (all must match)."})
    noise_offset: float = field(default=0.1, metadata={"help": "Noise offset (Emu uses 0.1)."})
    caption_dropout: float = field(default=0.1, metadata={"help": "Share of empty captions, so classifier-free guidance keeps working."})
    early_stopping_patience: int = field(default=3, metadata={"help": "Stop after this many evaluations without a better win rate."})

    def __post_init__(self):
        if self.max_semantic_drop is None and content_profile(self.pretrained_model_name_or_path, self.judge_bundle):
            self.max_semantic_drop = 0.03  # a LoRA that beautifies costs a little content (bundle/quality-tuning/recipe.yaml)
        super().__post_init__()
        if self.train_data_dir is None or not (Path(self.train_data_dir) / "metadata.jsonl").is_file():
            raise ValueError(f"`train_data_dir` {str(self.train_data_dir)!r} is not an imagefolder with metadata.jsonl; "
                             "pass the output_dir of `promptlift curate`.")
        if self.max_train_steps > 15_000:
            raise ValueError(f"`max_train_steps` {self.max_train_steps} exceeds Emu's 15k; quality-tuning stops early.")
        if not self.caption_column:
            raise ValueError("`caption_column` is empty; name at least one column.")
        if self.max_train_samples is not None and self.max_train_samples < 1:
            raise ValueError(f"`max_train_samples` must be >= 1, got {self.max_train_samples}.")
        if not 0 <= self.caption_dropout < 1:
            raise ValueError(f"`caption_dropout` must be in [0, 1), got {self.caption_dropout}.")
        if self.resolution is not None and self.resolution < 64:
            raise ValueError(f"`resolution` must be >= 64 pixels, got {self.resolution}.")
        if self.noise_offset < 0:
            raise ValueError(f"`noise_offset` must be >= 0, got {self.noise_offset}.")
