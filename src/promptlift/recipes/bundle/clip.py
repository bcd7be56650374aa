"""Bundle part `clip`: train the world CLIP (`promptlift.judges.clip`) contrastively on complex and literal captions
(never narrative ones: those are as new to it as to the UNet)."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import CLIPModel

from ...judges.clip import build_clip, clip_pixel_values, image_features, save_world_clip, text_features
from ...training import batch_seed, fit
from ...world.batches import world_batch
from ...world.prompts import COUNT_WORDS, LITERAL_SETTING, NOUNS, complex_prompt, literal_prompt
from ...world.scene import ATTRIBUTES
from .recipe import PART_SEEDS, BundleConfig, eval_renders, load_tokenizer, train_config, write_card

__all__ = ["train_clip", "zero_shot_accuracy"]


def _captions(scenes, generator: torch.Generator) -> list[str]:
    """Complex or literal caption per scene, half and half (never narrative)."""
    picks = torch.rand(len(scenes), generator=generator).tolist()
    return [complex_prompt(s) if p < 0.5 else literal_prompt(s) for s, p in zip(scenes, picks)]


def contrastive_loss(model: CLIPModel, pixel_values, input_ids, attention_mask, captions) -> torch.Tensor:
    """Symmetric InfoNCE where every pair with the same caption text is a positive (the world repeats captions)."""
    out = model(input_ids=input_ids, attention_mask=attention_mask, pixel_values=pixel_values)
    logits = out.logits_per_image  # (B, B)
    same = torch.tensor([[a == b for b in captions] for a in captions], dtype=logits.dtype)
    targets = same / same.sum(1, keepdim=True)
    return 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.t(), targets.t()))


@torch.no_grad()
def zero_shot_accuracy(model: CLIPModel, tokenizer, images: torch.Tensor, scenes) -> dict[str, float]:
    """Classify each image among the literal captions of every content combination; accuracy per attribute."""
    combos = [(st, k, c, n) for st in ATTRIBUTES["setting"] for k in ATTRIBUTES["kind"]
              for c in ATTRIBUTES["color"] for n in ATTRIBUTES["count"]]
    texts = [f"{COUNT_WORDS[n]} {c} {NOUNS[k][n > 1]} {LITERAL_SETTING[st]}" for st, k, c, n in combos]
    tok = tokenizer(texts, padding=True, return_tensors="pt")
    text = F.normalize(text_features(model, **tok), dim=-1)
    image = F.normalize(torch.cat([image_features(model, p) for p in images.split(128)]), dim=-1)
    best = (image @ text.t()).argmax(-1).tolist()
    acc = {}
    for i, name in enumerate(("setting", "kind", "color", "count")):
        acc[name] = round(sum(combos[b][i] == getattr(s, name) for b, s in zip(best, scenes)) / len(scenes), 4)
    return acc


def train_clip(cfg: BundleConfig) -> dict:
    """Train the world CLIP; save its text tower as pipeline/text_encoder and the rest as clip/."""
    seed = PART_SEEDS["clip"]
    torch.manual_seed(seed)
    tokenizer = load_tokenizer(cfg)
    model = build_clip(tokenizer)
    gen = torch.Generator()
    held_out = eval_renders(cfg)

    def batch_fn(i: int):
        batch = world_batch(i, cfg.clip_batch_size, seed)
        gen.manual_seed(batch_seed(seed, i, stride=7919))
        captions = _captions(batch.scenes, gen)
        tok = tokenizer(captions, padding=True, truncation=True, return_tensors="pt")
        return {"pixel_values": clip_pixel_values(batch.images), "input_ids": tok.input_ids,
                "attention_mask": tok.attention_mask, "captions": captions}

    def loss_fn(model, batch):
        return contrastive_loss(model, **batch), {}

    def eval_fn(model, step):
        return {"zero_shot": zero_shot_accuracy(model, tokenizer, held_out.images, held_out.scenes)}

    tc = train_config(cfg, "clip", max_train_steps=cfg.clip_steps, train_batch_size=cfg.clip_batch_size,
                       learning_rate=1e-3, lr_warmup_steps=200, checkpointing_steps=250, eval_steps=1000,
                       adam_weight_decay=0.1)
    result = fit(tc, model, loss_fn, batch_fn, eval_fn=eval_fn, desc="clip")
    save_world_clip(result.model.eval(), Path(cfg.output_dir))
    metrics = {"steps": result.step, **result.metrics}
    write_card(cfg, "clip", metrics)
    return metrics
