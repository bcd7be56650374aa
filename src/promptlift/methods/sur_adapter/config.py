"""Config of SUR-adapter training (Zhong et al. 2023, arXiv 2305.05189)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..config import MethodTrainConfig

__all__ = ["SURAdapterConfig", "TriplesConfig"]


@dataclass
class SURAdapterConfig(MethodTrainConfig):
    """Train a SUR-adapter on (simple prompt, complex prompt, image) triples; the diffusion model stays frozen.

        >>> import promptlift
        >>> cfg = promptlift.SURAdapterConfig(train_data_dir=data, output_dir=tmp / "sur")  # data: sur-triples output
        >>> cfg.simple_column, cfg.complex_column
        ('simple', 'complex')
    """

    train_data_dir: Path | None = field(default=None, metadata={"help": "Imagefolder of triples (metadata.jsonl with the two prompt columns)."})
    best_metric: Literal["win_rate_vs_base", "semantic_all"] = field(default="semantic_all", metadata={
        "help": "What the best checkpoint (best/) maximises on the held-out check, ties broken by the other: the "
                "adapter's aim is simple prompts drawn right (all attributes right, read by a content judge; without "
                "one, the win rate)."})
    simple_column: str = field(default="simple", metadata={
        "help": "Column of the simple (narrative) prompt: `promptlift sur-triples` writes `simple`; the world's "
                "datasets call it `narrative`."})
    complex_column: str = field(default="complex", metadata={"help": "Column of the complex (keyword) prompt."})
    extra_simple_columns: list[str] = field(default_factory=list, metadata={"help": "More columns used as simple prompts of the same image (e.g. literal: the adapter "
                                                                                     "also learns to keep prompts that already work)."})
    refiner: str | None = field(default=None, metadata={"help": "A refiner lift (`refiner` = the bundle's, or `refiner=PATH`): each simple prompt also "
                                                                "trains as the refiner's rewrite of it, the prompt the adapter reads in the lifted "
                                                                "stack (`sur-adapter.reads=rewrite`); the held-out check runs the refiner first."})
    rewrite_target: Literal["complex", "complex+change"] = field(
        default="complex", metadata={"help": "With `refiner` and `complex_target: tokens`, what a rewrite's row fits: the complex prompt's "
                                             "embedding, or that plus the rewrite's change of the base embedding (base(rewrite) - "
                                             "base(prompt)), so the refiner's added phrases pass through the adapter as they pass by an "
                                             "adapter that reads the user's prompt (`sur-adapter.reads=user`)."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use the first N triples only."})
    llm_model: str | None = field(default=None, metadata={"help": "LLM teacher: transformers id or folder; default: the packaged all-MiniLM-L6-v2."})
    llm_layer: int = field(default=-1, metadata={"help": "Hidden layer of the teacher to pool (negative counts from the top)."})
    llm_cache_dir: Path | None = field(default=None, metadata={"help": "On-disk cache of teacher features; default: output_dir/llm-cache."})
    feature_cache_dir: Path | None = field(default=None, metadata={"help": "Keep the cached latents/embeddings/LLM features here, keyed by the data, "
                                                                           "model and teacher, so runs on the same triples (ablations) share them."})
    beta: float = field(default=0.1, metadata={"help": "Adapter mixing weight (the paper's 0.1)."})
    num_layers: int = field(default=2, metadata={"help": "Transformer-encoder layers of the adapter."})
    num_heads: int = field(default=8, metadata={"help": "Attention heads of the adapter."})
    adapter_dropout: float = field(default=0.1, metadata={"help": "Dropout inside the adapter (training only)."})
    llm_at_inference: bool = field(default=False, metadata={"help": "The adapter also reads the LLM features at inference (not in the paper)."})
    llm_tokens: bool = field(default=False, metadata={"help": "The adapter cross-attends over the teacher's token states instead of adding one pooled "
                                                              "vector (not in the paper; needs `llm_at_inference`)."})
    read_prompt_embeds: bool = field(default=True, metadata={"help": "With `llm_tokens`: the adapter also reads the text encoder's embedding of the prompt; "
                                                                      "off, the teacher's tokens are its only input (the output is beta-mixed with it still)."})
    llm_slots: int = field(default=0, metadata={"help": "With `llm_tokens`: K learned attention pools over the teacher's tokens (the "
                                                          "teacher probe's form), added to every query and read as K more memory tokens; "
                                                          "with `attribute_columns` the head reads pool j for attribute j (K >= columns)."})
    llm_pools_only: bool = field(default=False, metadata={"help": "With `llm_slots`: the adapter reads the teacher through its pools "
                                                                   "only (a bottleneck: its output follows what the pools carry)."})
    class_memory: bool = field(default=False, metadata={"help": "With `llm_slots` and `attribute_columns`: the adapter reads attribute j "
                                                                 "as its head's class probabilities times learnt class embeddings "
                                                                 "(classify, then render) instead of pool j."})
    llm_max_tokens: int = field(default=77, metadata={"help": "Teacher tokens read per prompt with `llm_tokens` (longer prompts are cut)."})
    diffusion_batch_size: int | None = field(default=None, metadata={"help": "Rows of each batch the UNet terms read (the first N; default all): "
                                                                             "the UNet's backward pass is most of a step, the token target is cheap."})
    diffusion_weight: float = field(default=1.0, metadata={"help": "Weight of the diffusion loss (0 = ablation without it)."})
    llm_weight: float = field(default=1e-5, metadata={"help": "Weight of the LLM distillation KL (the paper's 1e-5; 0 = ablation)."})
    complex_weight: float = field(default=1e-5, metadata={"help": "Weight of the complex-prompt term (the paper's 1e-5; 0 = ablation)."})
    complex_target: Literal["embedding", "unet", "tokens"] = field(
        default="embedding", metadata={"help": "Complex-prompt term: the paper's KL to the complex embedding, MSE to the frozen UNet's prediction from it, "
                                               "or (tokens) MSE to the complex embedding at every position the UNet reads."})
    attribute_columns: list[str] = field(default_factory=list, metadata={
        "help": "Metadata columns of class labels (the world's setting, kind, color, count; for real triples tags "
                "of the image): a linear head on the adapted embedding (mean over positions) classifies each, trained "
                "beside the adapter and used by training only."})
    attribute_weight: float = field(default=0.0, metadata={"help": "Weight of the attribute head's cross-entropy (summed over the columns)."})
    gate_columns: list[str] = field(default_factory=list, metadata={
        "help": "Simple columns whose prompts the base model already reads right (e.g. literal, complex): a learnt gate "
                "on the base embedding is trained to tell their rows from the other simple columns' (narrative, mixed), "
                "and the lift applies the adapter's change weighted by its probability (gate \"learnt\")."})
    gate_weight: float = field(default=0.1, metadata={"help": "Weight of the learnt gate's binary cross-entropy (the gate has "
                                                              "its own parameters; the weight sets its share of the clipped gradient)."})
    eval_prompts: str = field(default="narrative-val", metadata={"help": "Held-out prompts: a world set or a .jsonl file."})

    def __post_init__(self):
        super().__post_init__()
        if self.train_data_dir is None or not (Path(self.train_data_dir) / "metadata.jsonl").is_file():
            raise ValueError(f"`train_data_dir` {str(self.train_data_dir)!r} is not an imagefolder with metadata.jsonl; "
                             "pass `promptlift world dataset` output or `promptlift sur-triples` output.")
        if not 0 < self.beta <= 1:
            raise ValueError(f"`beta` must be in (0, 1], got {self.beta}.")
        for name in ("diffusion_weight", "llm_weight", "complex_weight", "attribute_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"`{name}` must be >= 0, got {getattr(self, name)}.")
        if self.llm_tokens and not self.llm_at_inference:
            raise ValueError("`llm_tokens` reads the teacher's token states at inference: set `llm_at_inference` too.")
        if self.diffusion_batch_size is not None and not 1 <= self.diffusion_batch_size <= self.train_batch_size:
            raise ValueError(f"`diffusion_batch_size` must be in [1, train_batch_size={self.train_batch_size}], got "
                             f"{self.diffusion_batch_size}.")
        if not (self.read_prompt_embeds or self.llm_tokens):
            raise ValueError("`read_prompt_embeds` false leaves the adapter no input but the teacher's tokens: set `llm_tokens`.")
        if self.llm_slots < 0 or (self.llm_slots and not self.llm_tokens):
            raise ValueError(f"`llm_slots` {self.llm_slots} pools the teacher's token states: a count >= 0, with `llm_tokens`.")
        if self.llm_pools_only and not self.llm_slots:
            raise ValueError("`llm_pools_only` reads the teacher through its pools only: set `llm_slots`.")
        if self.class_memory and not (self.llm_slots and self.attribute_columns):
            raise ValueError("`class_memory` renders the attribute head's classes: set `llm_slots` and `attribute_columns`.")
        if self.llm_slots and self.attribute_columns and self.llm_slots < len(self.attribute_columns):
            raise ValueError(f"`llm_slots` {self.llm_slots}: the attribute head reads pool j for attribute j, so the "
                             f"{len(self.attribute_columns)} `attribute_columns` need at least {len(self.attribute_columns)}.")
        if self.llm_max_tokens < 1:
            raise ValueError(f"`llm_max_tokens` must be >= 1, got {self.llm_max_tokens}.")
        if self.rewrite_target != "complex" and (self.refiner is None or self.complex_target != "tokens"):
            raise ValueError(f"`rewrite_target: {self.rewrite_target}` changes the target of a refiner's rewrites at every "
                             "position: set `refiner` and `complex_target: tokens`.")
        if bool(self.attribute_columns) != (self.attribute_weight > 0):
            raise ValueError("the attribute head needs both `attribute_columns` (the label columns) and "
                             f"`attribute_weight` > 0; got {self.attribute_columns} and {self.attribute_weight}.")
        simple = [self.simple_column, *self.extra_simple_columns]
        if self.gate_columns:
            unknown = [c for c in self.gate_columns if c not in simple]
            if unknown or set(simple) <= set(self.gate_columns):
                raise ValueError(f"`gate_columns` {self.gate_columns} must be simple columns ({simple}) and leave at least "
                                 "one to adapt: the gate learns to tell the prompts the base model reads from the others.")
        if self.gate_weight <= 0:
            raise ValueError(f"`gate_weight` must be > 0, got {self.gate_weight}.")
        if self.diffusion_weight == self.llm_weight == self.complex_weight == 0:
            raise ValueError("every loss weight is 0; nothing would train the adapter.")


@dataclass
class TriplesConfig:
    """Build SUR-adapter triples from (image, complex prompt) pairs, with semantic correction."""

    input: str = field(default="", metadata={"help": "Imagefolder with metadata.jsonl, or a Hugging Face dataset id."})
    output_dir: Path = field(default=Path("data/sur-triples"), metadata={"help": "Triples imagefolder (simple, complex columns) + decisions.jsonl."})
    split: str = field(default="train", metadata={"help": "Split of a hub dataset."})
    image_column: str = field(default="image", metadata={"help": "Image column of a hub dataset."})
    complex_column: str = field(default="complex", metadata={"help": "Column of the complex (keyword) prompt."})
    simple_column: str | None = field(default=None, metadata={"help": "Column of the simple prompt; unset: caption with `captioner`."})
    captioner: str | None = field(default=None, metadata={"help": "Image-captioning model id or folder (e.g. Salesforce/blip-image-captioning-large)."})
    max_caption_tokens: int = field(default=30, metadata={"help": "Longest generated caption, in tokens."})
    clip_reward: str = field(default="clip-score", metadata={"help": "CLIP-type reward for the semantic checks (world-clip in the world)."})
    reward_option: list[str] = field(default_factory=list, metadata={"help": "REWARD.KEY=VALUE option of the reward; repeatable."})
    min_image_clip: float | None = field(default=None, metadata={"help": "Drop a triple whose simple prompt scores below this on its image."})
    min_text_agreement: float | None = field(default=None, metadata={"help": "Drop a triple whose simple and complex prompts' 100 x text cosine is below this."})
    batch_size: int = field(default=32, metadata={"help": "Images per batch."})
    overwrite: bool = field(default=False, metadata={"help": "Replace an existing output_dir."})

    def __post_init__(self):
        from ...rewards import parse_reward_options

        parse_reward_options(self.reward_option)
        if not self.input:
            raise ValueError("`input` is empty; pass an imagefolder path or a dataset id.")
        if self.simple_column is None and self.captioner is None:
            raise ValueError("give `simple_column` (prompts you have) or `captioner` (a captioning model id) for the simple prompts.")
        if self.batch_size < 1:
            raise ValueError(f"`batch_size` must be >= 1, got {self.batch_size}.")
