"""Train the prompt refiner (UF-FGTG, Hei et al. 2024, arXiv 2402.12760) on the shared training base.

1. Rows: (coarse, fine[, image]) from an imagefolder (the world: literal -> complex, with the render), or fine
   prompts coarsened into the 1-5 / 6-10 / 11-15-word buckets (real prompts, text only). The decoder's target is
   what the fine prompt adds to the coarse one (`extend_coarse`) or the whole fine prompt.
2. Cache the frozen text encoder's features of the coarse prompts, the fine prompts' pooled features, the targets'
   token ids (re-read in a shuffled phrase order every step with `shuffle_phrases`), and the images' VAE posteriors.
3. Loss = ce_weight x winner-take-all cross-entropy of the target over the modes (+ mode_balance x their
   mean) + align_weight x MSE(pooled adapted coarse, pooled fine) + diffusion_weight x the frozen UNet's
   denoising loss on the fine image conditioned on the adapted features + diversity_weight x the mean pairwise
   cosine of the mode vectors.
4. Every `eval_steps`: with a pipeline encoder, held-out prompts rewritten one-shot and judged against the raw
   prompts (win rate, semantic accuracy); otherwise held-out cross-entropy. Best refiner in best/.
"""

from __future__ import annotations

import random
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate.utils import set_seed
from diffusers import DDPMScheduler
from tqdm.auto import tqdm

from ...data.prompts import read_prompts
from ...data.records import iter_records
from ...training import batch_seed, epoch_indices
from ...training.diffusion import diffusion_loss, latent_dist_params, sample_latents, sdxl_time_ids
from ...images import images_to_tensor
from ..common import MethodTrainer, load_frozen_pipeline
from ..heldout import HeldOutEvaluator
from .config import RefinerConfig
from .data import Summariser, coarse_pairs, continuation, shuffle_phrases
from .features import TextFeatures
from .lm_trainer import LMRefinerTrainer
from .model import PromptRefiner
from .lift import Refiner, RefinerLift

__all__ = ["RefinerTrainer", "decoder_vocabulary", "load_rows", "train"]


def load_rows(cfg: RefinerConfig) -> list[dict]:
    """[{"coarse", "fine", "target", "image"?}] from `train_data`; `target` is what the decoder learns to write."""
    rows = []
    path = Path(cfg.train_data).expanduser()
    if cfg.coarse_column and (path / "metadata.jsonl").is_file():
        coarse = [c.strip() for c in cfg.coarse_column.split(",") if c.strip()]
        for rec in iter_records(path):
            if cfg.max_train_samples is not None and len(rows) >= cfg.max_train_samples:
                break
            missing = [c for c in (*coarse, cfg.fine_column) if not rec.meta.get(c)]
            if missing:
                raise ValueError(f"row {rec.key!r} has no {missing}; columns present: {sorted(rec.meta)}. Set "
                                 "`coarse_column` / `fine_column`.")
            rows += [{"coarse": rec.meta[c], "fine": rec.meta[cfg.fine_column], "image": rec.image} for c in coarse]
        rows = rows[:cfg.max_train_samples]
    elif cfg.coarse_column:
        raise ValueError(f"`train_data` {cfg.train_data!r} is no imagefolder with metadata.jsonl; pass one with the "
                         "coarse and fine columns, or set `coarse_column: null` to coarsen fine prompts.")
    else:
        fine = read_prompts(cfg.train_data, cfg.fine_column, limit=cfg.max_train_samples)
        summariser = Summariser(cfg.summariser) if cfg.summariser else None
        rows = [{"coarse": c, "fine": f, "image": None} for c, f in coarse_pairs(fine, summariser)]
    if not rows:
        raise ValueError(f"`train_data` {cfg.train_data!r} gave no (coarse, fine) pairs.")
    for r in rows:
        r["target"] = continuation(r["coarse"], r["fine"]) if cfg.extend_coarse else r["fine"]
    return rows


@torch.no_grad()
def build_cache(rows: list[dict], features: TextFeatures, cfg: RefinerConfig, vae=None, batch_size: int = 64) -> dict:
    """Stacked coarse features, masks, target labels and pooled fine features (+ VAE posteriors); the targets' text."""
    parts: dict[str, list] = {k: [] for k in ("x", "mask", "labels", "fine_pooled", "params", "pooled")}
    for start in tqdm(range(0, len(rows), batch_size), desc="cache", unit="batch"):
        batch = rows[start : start + batch_size]
        x, mask, pooled = features.encode([r["coarse"] for r in batch])
        parts["x"].append(x.half().cpu())
        if pooled is not None:
            parts["pooled"].append(pooled.cpu())
        parts["mask"].append(mask.cpu())
        fine, fine_mask = features([r["fine"] for r in batch])
        parts["fine_pooled"].append(_pooled(fine, fine_mask).cpu())
        parts["labels"].append(features.fine_labels([r["target"] for r in batch], cfg.max_fine_tokens))
        if vae is not None and all(r["image"] is not None for r in batch):
            parts["params"].append(latent_dist_params(vae, images_to_tensor([r["image"] for r in batch]).to(vae.device)).cpu())
    width = max(t.shape[1] for t in parts["labels"])
    parts["labels"] = [F.pad(t, (0, width - t.shape[1]), value=-100) for t in parts["labels"]]
    if len(parts["params"]) != len(parts["x"]):
        parts["params"] = []  # images only where every row has one
    return {**{k: torch.cat(v) for k, v in parts.items() if v}, "targets": [r["target"] for r in rows]}


def decoder_vocabulary(labels: list[torch.Tensor], features: TextFeatures) -> torch.Tensor:
    """Sorted tokenizer ids the decoder writes: every token of the fine prompts' `labels`, plus the specials."""
    specials = torch.tensor(list(features.special_ids.values()))
    return torch.cat([*(t[t != -100] for t in labels), specials]).unique()


def _pooled(x: torch.Tensor, padding_mask: torch.Tensor) -> torch.Tensor:
    real = (~padding_mask).unsqueeze(-1).to(x.dtype)
    return (x * real).sum(1) / real.sum(1).clamp_min(1)


def mode_cross_entropy(m: PromptRefiner, adapted: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(B, M): each sample's cross-entropy of its fine prompt under every mode."""
    return torch.stack([m.token_losses(adapted, mask, labels, k) for k in range(m.num_modes)], 1)


def mode_similarity(modes: torch.Tensor) -> torch.Tensor:
    """Mean pairwise cosine of the mode vectors (B, M, D) -> scalar (the diversity term, lower is more diverse)."""
    modes = F.normalize(modes, dim=-1)
    k = modes.shape[1]
    return ((modes @ modes.transpose(1, 2)).sum((1, 2)) - k).mean() / max(k * (k - 1), 1)


def _build_model(cfg: RefinerConfig, features: TextFeatures, caches: list[dict]) -> PromptRefiner:
    """The refiner, its decoder vocabulary read from the caches' labels, which are mapped to decoder ids in place."""
    token_ids = None
    if cfg.decoder_vocab == "train":  # the held-out pairs' tokens too, so their cross-entropy is defined
        token_ids = decoder_vocabulary([c["labels"] for c in caches], features)
    model = PromptRefiner(features.dim, len(features.tokenizer), **features.special_ids, d_model=cfg.d_model,
                          num_decoder_layers=cfg.num_decoder_layers, num_heads=cfg.num_heads, num_modes=cfg.num_modes,
                          token_ids=token_ids)
    for c in caches:
        c["labels"] = model.to_decoder_ids(c["labels"])
    return model


def _judged_check(refiner: Refiner, evaluator: HeldOutEvaluator, cfg: RefinerConfig) -> dict:
    """Held-out prompts rewritten one-shot and judged against the raw ones."""
    lift = RefinerLift("refiner", None, max_new_tokens=cfg.eval_max_new_tokens, refiner=refiner)
    metrics = evaluator([lift])
    metrics["samples"] = [f"{a} -> {b}" for a, b in lift.last_rewrites[:4]]
    return metrics


def _cross_entropy_check(refiner: Refiner, held_out: dict, held_rows: list[dict]) -> dict:
    """Text only: the held-out pairs' best-mode cross-entropy (lower is better) and a few refinements."""
    m = refiner.model
    adapted = m.adapt(held_out["x"].float(), held_out["mask"])
    ce = float(mode_cross_entropy(m, adapted, held_out["mask"], held_out["labels"]).min(1).values.mean())
    samples = [f"{r['coarse']} -> {refiner.one_shot([r['coarse']])[0]}" for r in held_rows[:4]]
    return {"heldout_ce": ce, "samples": samples}


def _batch_fn(cfg: RefinerConfig, cache: dict, model: PromptRefiner, features: TextFeatures, pipe, use_images: bool):
    """Step -> batch of cached rows (the same on a resumed run: everything random is seeded by the step)."""
    n, gen = len(cache["x"]), torch.Generator()

    def batch_fn(i: int) -> dict:
        idx = torch.tensor(epoch_indices(i, n, cfg.train_batch_size, cfg.seed))
        batch = {k: cache[k][idx] for k in ("x", "mask", "fine_pooled")}
        batch["x"] = batch["x"].float()
        if cfg.shuffle_phrases:
            rng = random.Random(batch_seed(cfg.seed, i))
            texts = [shuffle_phrases(cache["targets"][j], rng) for j in idx.tolist()]
            labels = model.to_decoder_ids(features.fine_labels(texts, cfg.max_fine_tokens))
        else:
            labels = cache["labels"][idx]
        width = int((labels != -100).sum(1).max())
        batch["labels"] = labels[:, :width].contiguous()
        if use_images:  # the diffusion term reads the first `diffusion_batch_size` rows
            gen.manual_seed(batch_seed(cfg.seed, i))
            idx = idx[: cfg.diffusion_batch_size]
            batch["latents"] = sample_latents(cache["params"][idx], pipe.vae.config.scaling_factor, gen)
            if "pooled" in cache:
                batch["pooled"] = cache["pooled"][idx]
        batch["seed"] = batch_seed(cfg.seed, i, stride=7919)
        return batch

    return batch_fn


def _loss_fn(cfg: RefinerConfig, pipe, use_images: bool):
    """(model, batch) -> (total, terms): the weighted sum of the four losses."""
    scheduler = DDPMScheduler.from_config(pipe.scheduler.config)

    def loss_fn(m, batch):
        device = next(m.parameters()).device
        b = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
        adapted = m.adapt(b["x"], b["mask"])
        ce = mode_cross_entropy(m, adapted, b["mask"], b["labels"])
        wta = ce.min(1).values.mean() + cfg.mode_balance * ce.mean()
        align = F.mse_loss(_pooled(adapted, b["mask"]), b["fine_pooled"])
        diversity = mode_similarity(m.mode_vectors(adapted, b["mask"]))
        diffusion = torch.zeros((), device=device)
        if use_images:
            added, rows = None, len(b["latents"])
            if "pooled" in b:  # SDXL: the coarse prompt's pooled embedding and size conditioning
                h, w = (s * pipe.vae_scale_factor for s in b["latents"].shape[-2:])
                added = {"text_embeds": b["pooled"], "time_ids": sdxl_time_ids(h, w, rows, device)}
            diffusion = diffusion_loss(pipe.unet, scheduler, b["latents"], adapted[:rows],
                                       torch.Generator().manual_seed(b["seed"]), 0.0, added)
        total = (cfg.ce_weight * wta + cfg.align_weight * align + cfg.diffusion_weight * diffusion
                 + cfg.diversity_weight * diversity)
        return total, {"ce": wta.detach(), "align": align.detach(), "diffusion": diffusion.detach(),
                       "diversity": diversity.detach()}

    return loss_fn


class RefinerTrainer(MethodTrainer):
    """The encoder-adapter-decoder refiner on (coarse, fine[, image]) rows (module docstring)."""

    method = "refiner"

    def __init__(self, cfg: RefinerConfig):
        rows = load_rows(cfg)
        self.held_rows = []
        if cfg.text_encoder != "pipeline":  # text only: the last 64 pairs are held out for the cross-entropy check
            if len(rows) < 128:
                raise ValueError(f"the text-only refiner needs >= 128 pairs (64 are held out), got {len(rows)}.")
            self.held_rows, rows = rows[-64:], rows[:-64]
        pipe = load_frozen_pipeline(cfg)
        super().__init__(cfg, pipe)
        self.features = TextFeatures(pipe, cfg.text_encoder, cfg.max_coarse_tokens)
        cache = build_cache(rows, self.features, cfg, pipe.vae if cfg.diffusion_weight > 0 else None)
        self.held_out = build_cache(self.held_rows, self.features, cfg) if self.held_rows else None
        set_seed(cfg.seed)  # weights initialised below are a function of the seed (imports may reseed torch at random)
        self.model = _build_model(cfg, self.features, [c for c in (cache, self.held_out) if c is not None])
        self.extra = {"text_encoder": cfg.text_encoder, "max_coarse_tokens": cfg.max_coarse_tokens,
                      "extend_coarse": cfg.extend_coarse, "base": cfg.pretrained_model_name_or_path}
        use_images = "params" in cache and cfg.diffusion_weight > 0
        self._batch = _batch_fn(cfg, cache, self.model, self.features, pipe, use_images)
        self._loss = _loss_fn(cfg, pipe, use_images)
        self.evaluator = HeldOutEvaluator.from_config(pipe, cfg) if cfg.text_encoder == "pipeline" else None

    def batch(self, index):
        return self._batch(index)

    def loss(self, model, batch):
        return self._loss(model, batch)

    def evaluate(self, model, step):
        refiner = Refiner(model, self.features, self.pipe, extend=self.cfg.extend_coarse)
        if self.evaluator is not None:
            return _judged_check(refiner, self.evaluator, self.cfg)
        return _cross_entropy_check(refiner, self.held_out, self.held_rows)

    def save(self, model, folder, step=None):
        model.save_pretrained(folder, self.extra if step is None else {**self.extra, "step": step})


def train(cfg: RefinerConfig) -> Path:
    """Train a refiner on `train_data`; returns the output folder (refiner in best/ and final/). `decoder: lm`
    fine-tunes a pretrained causal LM instead (lm_trainer.py)."""
    if cfg.decoder == "lm":
        return LMRefinerTrainer(cfg).train()
    return RefinerTrainer(cfg).train()
