"""The config of `promptlift curate` (Emu's funnel). It imports neither torch nor diffusers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class CurateConfig:
    """Curate a small set of very aesthetic images from a large pool (automatic stage of Emu's quality-tuning data)."""

    input: str = field(default="", metadata={"help": "Imagefolder with metadata.jsonl, or a Hugging Face dataset id."})
    output_dir: Path = field(default=Path("data/curated"), metadata={"help": "Curated imagefolder + decisions.jsonl + report.html."})
    split: str = field(default="train", metadata={"help": "Split of a hub dataset."})
    image_column: str = field(default="image", metadata={"help": "Image column of a hub dataset."})
    caption_column: str | None = field(default="caption", metadata={"help": "Caption column (for the CLIP filter and the output)."})
    num_keep: int = field(default=2000, metadata={"help": "Images to keep (the top N after the filters)."})
    min_size: int = field(default=64, metadata={"help": "Drop images whose shorter side is below this (px)."})
    max_aspect: float = field(default=2.0, metadata={"help": "Drop images whose long/short side ratio exceeds this."})
    aesthetic_reward: str = field(default="auto", metadata={
        "help": "Reward that scores and ranks aesthetics; auto: world-aesthetic-reward on world renders, else "
                "laion-aesthetic."})
    min_aesthetic: float | None = field(default=None, metadata={"help": "Drop images scoring below this aesthetic."})
    clip_reward: str | None = field(default="auto", metadata={
        "help": "Image-text reward for the CLIP filter (none to skip); auto: world-clip on world renders, else clip-score."})
    min_clip: float | None = field(default=None, metadata={"help": "Drop images whose caption scores below this."})
    dedup_threshold: float | None = field(default=0.985, metadata={"help": "Cosine of 16x16 thumbnails above which an image duplicates a kept one."})
    balance_column: str | None = field(default=None, metadata={"help": "Metadata column holding each image's class (concept balance)."})
    max_share_per_class: float = field(default=1.0, metadata={"help": "Largest share of num_keep one class may take."})
    text_filter: bool = field(default=False, metadata={"help": "Drop images with text in them (needs pytesseract and tesseract)."})
    reward_option: list[str] = field(default_factory=list, metadata={"help": "REWARD.KEY=VALUE option of a reward; repeatable."})
    batch_size: int = field(default=64, metadata={"help": "Images per scoring forward pass."})
    read_ahead: bool = field(default=False, metadata={"help": "Read and decode images in a thread ahead of scoring (helps when "
                                                              "the scoring runs on a GPU; on a CPU the thread competes with it)."})
    overwrite: bool = field(default=False, metadata={"help": "Replace an existing output_dir."})
    report_images: int = field(default=64, metadata={"help": "Kept images shown in the report's contact sheet."})

    def __post_init__(self):
        from ..rewards import parse_reward_options
        from ..profiles import data_profile

        parse_reward_options(self.reward_option)
        defaults = data_profile(self.input).defaults  # a plug-in's judges read only its own renders (the world's)
        self.aesthetic_reward = defaults.aesthetic if self.aesthetic_reward == "auto" else self.aesthetic_reward
        self.clip_reward = defaults.clip if self.clip_reward == "auto" else self.clip_reward
        if not self.input:
            raise ValueError("`input` is empty; pass an imagefolder path or a dataset id.")
        if self.num_keep < 1 or self.batch_size < 1:
            raise ValueError(f"`num_keep` and `batch_size` must be >= 1, got {self.num_keep} and {self.batch_size}.")
        if not 0 < self.max_share_per_class <= 1:
            raise ValueError(f"`max_share_per_class` must be in (0, 1], got {self.max_share_per_class}.")
        if self.min_clip is not None and not self.clip_reward:
            raise ValueError("`min_clip` needs a `clip_reward`.")
