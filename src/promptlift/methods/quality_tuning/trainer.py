"""Quality-tuning (Dai et al. 2023, "Emu", arXiv 2309.15807): fine-tune the UNet on a few thousand curated images.

1. Cache the VAE posteriors of the curated images and the text embeddings of their captions (leaving out the
   images a person dropped on the web app's Review page: review.jsonl beside the set).
2. Fine-tune the UNet (all weights, or a LoRA) with the denoising loss and a noise offset of 0.1.
3. Every `eval_steps`, generate held-out prompts with fixed seeds and judge them against the base model's
   images of the same prompts and seeds (win rate by an evaluation judge, semantic accuracy); keep the
   best weights and stop when they stop improving, before the training loss would.
"""

from __future__ import annotations

from pathlib import Path

import torch
from accelerate.utils import set_seed
from diffusers import DDPMScheduler, StableDiffusionXLPipeline
from tqdm.auto import tqdm

from ...data.buckets import bucket_batch, bucket_size, fit_to_bucket
from ...data.records import iter_records
from ...data.review import read_review
from ...pipeline import encode_prompts
from ...training import batch_seed, epoch_indices
from ...training.diffusion import UNET_LORA_TARGETS, diffusion_loss, latent_dist_params, sample_latents, sdxl_time_ids
from ...files import atomic_dir
from ...images import images_to_tensor
from ..common import MethodTrainer, load_frozen_pipeline
from ..heldout import HeldOutEvaluator
from .config import QualityTuningConfig

__all__ = ["QualityTuningTrainer", "save_weights", "train"]


@torch.no_grad()
def build_cache(pipe, cfg: QualityTuningConfig) -> list[dict]:
    """Per curated image: VAE posterior parameters and the prompt embeddings of each caption column."""
    cache = []
    dropped = {name for name, kept in read_review(cfg.train_data_dir).items() if not kept}  # by a person
    records = [r for r in iter_records(cfg.train_data_dir) if r.meta.get("file_name") not in dropped]
    if cfg.max_train_samples is not None:
        records = sorted(records, key=_curation_rank)[: cfg.max_train_samples]
    sizes = sorted({rec.image.size for rec in records if rec.image is not None})
    if cfg.resolution is None and len(sizes) > 1:  # refused before any image is encoded
        raise ValueError(f"`train_data_dir` {str(cfg.train_data_dir)!r} holds images of {len(sizes)} sizes "
                         f"({sizes[:3]}...); pass `--resolution` (e.g. 1024) to train on aspect-ratio buckets.")
    for rec in tqdm(records, desc="cache", unit="img"):
        if rec.image is None:
            raise ValueError(f"curated image {rec.key!r} is unreadable ({rec.error}); curate again.")
        missing = [c for c in cfg.caption_column if not rec.meta.get(c)]
        if missing:
            raise ValueError(f"curated image {rec.key!r} has no caption in {missing}; valid columns: {sorted(rec.meta)}.")
        image, entry = rec.image, {"size": rec.image.size, "time_ids": None}
        if cfg.resolution is not None:  # SDXL's micro-conditioning: original size, crop top-left, target size
            entry["size"] = bucket_size(*image.size, cfg.resolution)
            (image, (top, left)), height, width = fit_to_bucket(image, entry["size"]), image.height, image.width
            entry["time_ids"] = torch.tensor([height, width, top, left, entry["size"][1], entry["size"][0]], dtype=torch.float32)
        entry["params"] = latent_dist_params(pipe.vae, images_to_tensor([image]).to(pipe.device))[0].cpu()
        for column in cfg.caption_column:
            embeds = encode_prompts(pipe, [rec.meta[column]], do_classifier_free_guidance=False)
            entry[column] = (embeds.prompt_embeds[0].cpu(),
                             None if embeds.pooled_prompt_embeds is None else embeds.pooled_prompt_embeds[0].cpu())
        cache.append(entry)
    if not cache:
        raise ValueError(f"`train_data_dir` {str(cfg.train_data_dir)!r} holds no images.")
    return cache


def _curation_rank(rec) -> int:
    """The rank `promptlift curate` gave an image ("rank 12" -> 12); unranked images keep their order after."""
    rank = str((rec.meta.get("curation") or {}).get("rank", ""))
    return int(rank.split()[-1]) if rank.startswith("rank ") else 1 << 62


def save_weights(unet, cfg: QualityTuningConfig, folder: Path) -> Path:
    """A diffusers `unet/` folder, or `pytorch_lora_weights.safetensors` for `load_lora_weights`, atomically."""
    with atomic_dir(folder) as tmp:
        if cfg.use_lora:
            from peft.utils import get_peft_model_state_dict

            from diffusers import StableDiffusionPipeline

            cls = StableDiffusionXLPipeline if "text_time" == unet.config.addition_embed_type else StableDiffusionPipeline
            cls.save_lora_weights(tmp, unet_lora_layers=get_peft_model_state_dict(unet),
                                  unet_lora_adapter_metadata={"r": cfg.lora_rank, "lora_alpha": cfg.lora_alpha,
                                                              "target_modules": UNET_LORA_TARGETS})
        else:
            unet.save_pretrained(tmp / "unet")
    return folder


class QualityTuningTrainer(MethodTrainer):
    """Quality-tuning of the UNet (all weights or a LoRA) on curated images; stops when `early_stopping_patience`
    checks in a row find no better weights."""

    method = "quality-tuning"

    def __init__(self, cfg: QualityTuningConfig):
        pipe = load_frozen_pipeline(cfg, train="unet")
        super().__init__(cfg, pipe)
        unet = self.model = pipe.unet
        set_seed(cfg.seed)  # weights initialised below are a function of the seed (imports may reseed torch at random)
        if cfg.use_lora:
            from peft import LoraConfig

            unet.requires_grad_(False)
            unet.add_adapter(LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, init_lora_weights="gaussian",
                                        target_modules=UNET_LORA_TARGETS))
        else:
            unet.requires_grad_(True)
        self.cache = build_cache(pipe, cfg)
        with torch.no_grad():
            empty = encode_prompts(pipe, [""], do_classifier_free_guidance=False)
        self.empty = (empty.prompt_embeds[0].cpu(),
                      None if empty.pooled_prompt_embeds is None else empty.pooled_prompt_embeds[0].cpu())
        self.scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
        self.evaluator = HeldOutEvaluator.from_config(pipe, cfg)
        self.generator = torch.Generator()

    def batch(self, index: int) -> dict:
        cfg, cache, gen = self.cfg, self.cache, self.generator
        if cfg.resolution is None:
            idx = epoch_indices(index, len(cache), cfg.train_batch_size, cfg.seed)
        else:
            idx = bucket_batch(index, [entry["size"] for entry in cache], cfg.train_batch_size, cfg.seed)
        gen.manual_seed(batch_seed(cfg.seed, index))
        cols = [cfg.caption_column[j] for j in torch.randint(len(cfg.caption_column), (len(idx),), generator=gen).tolist()]
        drop = (torch.rand(len(idx), generator=gen) < cfg.caption_dropout).tolist()
        texts = [self.empty if d else cache[k][c] for k, c, d in zip(idx, cols, drop)]
        params = torch.stack([cache[k]["params"] for k in idx])
        batch = {"latents": sample_latents(params, self.pipe.vae.config.scaling_factor, gen),
                 "embeds": torch.stack([t[0] for t in texts]), "seed": batch_seed(cfg.seed, index, stride=7919)}
        if isinstance(self.pipe, StableDiffusionXLPipeline):
            h, w = (s * self.pipe.vae_scale_factor for s in params.shape[-2:])
            time_ids = (torch.stack([cache[k]["time_ids"] for k in idx]) if cfg.resolution is not None
                        else sdxl_time_ids(h, w, len(idx)))
            batch["added"] = {"text_embeds": torch.stack([t[1] for t in texts]), "time_ids": time_ids}
        return batch

    def loss(self, model, batch):
        device = next(model.parameters()).device
        g = torch.Generator().manual_seed(batch["seed"])
        added = {k: v.to(device) for k, v in batch["added"].items()} if "added" in batch else None
        return diffusion_loss(model, self.scheduler, batch["latents"].to(device), batch["embeds"].to(device), g,
                              self.cfg.noise_offset, added), {}

    def evaluate(self, model, step):
        return self.evaluator()  # the pipeline's UNet is the model in training

    def save(self, model, folder, step=None):
        save_weights(model, self.cfg, folder)

    def should_stop(self, metrics):
        return self.keeper.since_best >= self.cfg.early_stopping_patience


def train(cfg: QualityTuningConfig) -> Path:
    """Quality-tune the UNet of `pretrained_model_name_or_path` on `train_data_dir`; returns the output folder."""
    return QualityTuningTrainer(cfg).train()
