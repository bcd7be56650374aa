"""Train the refiner on a pretrained causal LM (`decoder: lm`; the design is in lm.py).

1. Rows: (coarse, fine) pairs as the T5 refiner reads them (`load_rows`); the answer is the fine prompt, or what it
   adds to the coarse one (`extend_coarse`).
2. Each row is the LM's context for the coarse prompt (its chat template with `instruction`) and the answer, the
   loss on the answer's tokens only; a LoRA on every linear layer (`lm_lora_rank`) or the whole LM trains.
3. Every `eval_steps`, as the T5 refiner: with the pipeline, held-out prompts refined one-shot and judged against the
   raw ones; otherwise the held-out pairs' answer cross-entropy. The best in best/, the last in final/.
"""

from __future__ import annotations

from pathlib import Path

import torch
from accelerate.utils import set_seed

from ...training import epoch_indices
from ..common import HALF_DTYPES, MethodTrainer, load_frozen_pipeline
from ..heldout import HeldOutEvaluator
from ..language_models import SMOLLM2, SMOLLM2_HUB_ID, load_causal_lm
from .config import RefinerConfig
from .lm import LMPrompts, LMRefiner

__all__ = ["LMRefinerTrainer"]


def _pad(rows: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(ids) for ids, _ in rows)
    ids = torch.tensor([i + [pad_id] * (width - len(i)) for i, _ in rows])
    labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in rows])
    mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i, _ in rows])
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def _save(model, tokenizer, cfg: RefinerConfig, folder: Path, weights: str) -> None:
    """The refiner folder: the LoRA (peft's files) or the whole LM and its tokenizer, and lm_refiner.json."""
    from ...files import atomic_dir

    dtype = HALF_DTYPES.get(cfg.lm_save_precision)
    with atomic_dir(folder) as tmp:
        if weights == "lora":  # the LM the LoRA belongs to, by a name that means the same on another machine
            for config in model.peft_config.values():
                config.base_model_name_or_path = SMOLLM2_HUB_ID if cfg.lm == SMOLLM2 else cfg.lm
        if weights != "none":  # only what is saved is cast: a LoRA's entries (peft keeps those), or the whole LM
            state = None if dtype is None else {k: v.to(dtype) for k, v in model.state_dict().items()
                                                if weights == "full" or "lora_" in k}
            model.save_pretrained(tmp, state_dict=state)
        if weights == "full":
            tokenizer.save_pretrained(tmp)
        lm = str(Path(cfg.lm).expanduser().resolve()) if Path(cfg.lm).expanduser().exists() else cfg.lm  # from anywhere
        LMRefiner.write_config(tmp, lm, weights, cfg.instruction, cfg.template, cfg.extend_coarse)


class LMRefinerTrainer(MethodTrainer):
    """A pretrained causal LM (a LoRA on it, or all of it) fine-tuned to answer a coarse prompt with its refinement;
    `zero_shot` only writes the LM's refiner folders."""

    method = "refiner"

    def __init__(self, cfg: RefinerConfig):
        from .trainer import load_rows  # the T5 trainer's rows (the module imports this one)

        pipe = load_frozen_pipeline(cfg)
        # an LM ends its answer itself: its folder's lift runs with the length its held-out check had
        super().__init__(cfg, pipe, options={"max_new_tokens": cfg.eval_max_new_tokens})
        set_seed(cfg.seed)
        self.model, self.tokenizer = load_causal_lm(cfg.lm)
        self.weights = "none" if cfg.zero_shot else "lora" if cfg.lm_lora_rank > 0 else "full"
        if cfg.zero_shot:
            return
        rows = load_rows(cfg)
        self.held_rows = []
        self.evaluator = HeldOutEvaluator.from_config(pipe, cfg) if cfg.text_encoder == "pipeline" else None
        if self.evaluator is None:  # text only: the last 64 pairs are held out for the cross-entropy check
            if len(rows) < 128:
                raise ValueError(f"the text-only refiner needs >= 128 pairs (64 are held out), got {len(rows)}.")
            self.held_rows, rows = rows[-64:], rows[:-64]
        prompts = LMPrompts(self.tokenizer, cfg.instruction, cfg.template)
        self.encoded = [prompts.training_row(r["coarse"], r["target"]) for r in rows]
        self.held = _pad([prompts.training_row(r["coarse"], r["target"]) for r in self.held_rows],
                         self.tokenizer.pad_token_id) if self.held_rows else None
        if self.weights == "lora":
            from peft import LoraConfig, get_peft_model

            self.model = get_peft_model(self.model, LoraConfig(r=cfg.lm_lora_rank, lora_alpha=cfg.lm_lora_alpha,
                                                               target_modules="all-linear", lora_dropout=0.0))
        self.model.train()

    def train(self) -> Path:
        if not self.cfg.zero_shot:
            return super().train()
        for name in ("best", "final"):
            self.save(self.model, self.output_dir / name)
            self.keeper.mark(self.output_dir / name)
        return self.output_dir

    def batch(self, index: int) -> dict:
        cfg = self.cfg
        return _pad([self.encoded[j] for j in epoch_indices(index, len(self.encoded), cfg.train_batch_size, cfg.seed)],
                    self.tokenizer.pad_token_id)

    def loss(self, model, batch):
        device = next(model.parameters()).device
        return model(**{k: v.to(device) for k, v in batch.items()}).loss, {}

    def evaluate(self, model, step):
        from .trainer import _judged_check

        cfg = self.cfg
        model.eval()
        refiner = LMRefiner(model, self.tokenizer, self.pipe, instruction=cfg.instruction, template=cfg.template,
                            extend=cfg.extend_coarse)
        if self.evaluator is not None:
            metrics = _judged_check(refiner, self.evaluator, cfg)
        else:
            with torch.no_grad():
                ce = float(self.loss(model, self.held)[0])
            metrics = {"heldout_ce": ce, "samples": [f"{r['coarse']} -> {refiner.one_shot([r['coarse']])[0]}"
                                                     for r in self.held_rows[:4]]}
        model.train()
        return metrics

    def save(self, model, folder, step=None):
        _save(model, self.tokenizer, self.cfg, folder, self.weights)

