"""The bundle's diffusion model: UNet pre-training on the world, and the pipeline folder it ships in.

The UNet learns from complex and literal captions only (never narrative), 10 % of them dropped for
classifier-free guidance, with the VAE and the world-CLIP text tower frozen, as in Stable Diffusion.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from diffusers.training_utils import compute_snr
from transformers import CLIPTextModel

from ...judges.bundle import attribute_accuracy, bundle_size_mb, load_judge
from ...pipeline import seeded_images
from ...training import batch_seed, find_checkpoint, fit
from ...training.diffusion import noised
from ...files import atomic_dir, atomic_path
from ...images import image_grid
from ...world.batches import world_batch
from ...world.dataset import iter_prompt_set
from ...world.prompts import complex_prompt, literal_prompt
from .recipe import PART_SEEDS, BundleConfig, load_tokenizer, load_vae, train_config, write_card

__all__ = ["assemble", "build_unet", "generate_for_eval", "noise_scheduler", "train_unet", "world_pipeline"]

SCHEDULER_CONFIG = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")


def build_unet() -> UNet2DConditionModel:
    """UNet2DConditionModel on 16x16x4 latents: channels (64, 128, 192), cross-attention at 16 and 8 px."""
    return UNet2DConditionModel(
        sample_size=16, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(64, 128, 192),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=128, attention_head_dim=8, norm_num_groups=32,
    )


def noise_scheduler() -> DDPMScheduler:
    return DDPMScheduler(**SCHEDULER_CONFIG, prediction_type="epsilon")


def inference_scheduler() -> DDIMScheduler:
    return DDIMScheduler(**SCHEDULER_CONFIG, clip_sample=False, set_alpha_to_one=False, steps_offset=1)


def load_text_encoder(cfg: BundleConfig) -> CLIPTextModel:
    path = Path(cfg.output_dir) / "pipeline" / "text_encoder"
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"no text encoder at {path}; run the `clip` part first.")
    return CLIPTextModel.from_pretrained(path).eval().requires_grad_(False)


def world_pipeline(cfg: BundleConfig, unet: UNet2DConditionModel) -> StableDiffusionPipeline:
    """A StableDiffusionPipeline of the bundle's parts around `unet`."""
    pipe = StableDiffusionPipeline(
        vae=load_vae(cfg), text_encoder=load_text_encoder(cfg), tokenizer=load_tokenizer(cfg), unet=unet,
        scheduler=inference_scheduler(), safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _check_vae_gate(cfg: BundleConfig) -> None:
    import json

    card = Path(cfg.output_dir) / "card.json"
    vae = json.loads(card.read_text()).get("vae", {}) if card.is_file() else {}
    if not vae.get("gate_passed"):
        raise RuntimeError(f"the VAE has not passed its gate (every round-trip accuracy >= {cfg.vae_gate}: "
                           f"{vae.get('round_trip')}); train the `vae` part further before the UNet.")


def train_unet(cfg: BundleConfig) -> dict:
    """Pre-train the UNet on complex+literal captions with caption dropout; judge generations as it goes."""
    _check_vae_gate(cfg)
    seed = PART_SEEDS["unet"]
    torch.manual_seed(seed)
    unet = build_unet()
    shipped = Path(cfg.output_dir) / "pipeline" / "unet"
    if cfg.unet_init == "bundle" and find_checkpoint(Path(cfg.work_dir) / "unet", "latest") is None:
        if not (shipped / "config.json").is_file():
            raise FileNotFoundError(f"`unet_init` bundle: no UNet at {shipped} to start from.")
        unet.load_state_dict(UNet2DConditionModel.from_pretrained(shipped).state_dict())
    vae, text_encoder, tokenizer = load_vae(cfg), load_text_encoder(cfg), load_tokenizer(cfg)
    scheduler = noise_scheduler()
    scale = vae.config.scaling_factor
    gen = torch.Generator()

    @torch.no_grad()
    def batch_fn(i: int):
        batch = world_batch(i, cfg.unet_batch_size, seed)
        gen.manual_seed(batch_seed(seed, i, stride=7919))
        u = torch.rand(len(batch.scenes), generator=gen).tolist()
        captions = ["" if p < cfg.caption_dropout else complex_prompt(s) if p < (1 + cfg.caption_dropout) / 2
                    else literal_prompt(s) for s, p in zip(batch.scenes, u)]
        latents = vae.encode(batch.images * 2 - 1).latent_dist.sample(generator=gen) * scale
        noisy, t, noise = noised(scheduler, latents, gen)  # epsilon prediction: the target is the noise
        return {"noisy": noisy, "noise": noise, "t": t,
                "encoder_hidden_states": encode(captions)}

    cache: dict[str, torch.Tensor] = {}  # the world repeats captions: encode each once (the encoder is frozen)

    def encode(captions: list[str]) -> torch.Tensor:
        for c in captions:
            if c not in cache:  # one at a time: a caption's embedding must not depend on its batch (exact resume)
                if len(cache) >= 50_000:
                    cache.clear()
                ids = tokenizer([c], padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                                return_tensors="pt").input_ids
                cache[c] = text_encoder(ids)[0][0]
        return torch.stack([cache[c] for c in captions])  # (B, 77, D)

    def loss_fn(model, batch):
        pred = model(batch["noisy"], batch["t"], batch["encoder_hidden_states"]).sample
        # min-SNR-5 weighting (Hang et al. 2023) for faster convergence
        snr = compute_snr(scheduler, batch["t"])
        weight = torch.clamp(snr, max=5.0) / snr
        loss = (F.mse_loss(pred, batch["noise"], reduction="none").mean((1, 2, 3)) * weight).mean()
        return loss, {}

    prompts = list(iter_prompt_set("complex", cfg.unet_eval_prompts, seed=1))
    judge = load_judge(cfg.output_dir, "attributes")

    samples = Path(cfg.work_dir) / "unet" / "samples"

    def eval_fn(model, step):
        pipe = world_pipeline(cfg, model)
        images = generate_for_eval(pipe, [x["prompt"] for x in prompts], [0] * len(prompts), guidance_scale=4.0)
        samples.mkdir(parents=True, exist_ok=True)
        with atomic_path(samples / f"step-{step:06d}.png", suffix=".png") as tmp:
            image_grid(images, cols=8, scale=2).save(tmp)
        return {"complex_prompts": attribute_accuracy(judge, images, [x["expected"] for x in prompts])}

    tc = train_config(cfg, "unet", max_train_steps=cfg.unet_steps, train_batch_size=cfg.unet_batch_size,
                       learning_rate=cfg.unet_learning_rate, lr_warmup_steps=500, checkpointing_steps=250,
                       eval_steps=cfg.unet_eval_steps, use_ema=True, ema_decay=0.999, adam_weight_decay=0.01)
    result = fit(tc, unet, loss_fn, batch_fn, eval_fn=eval_fn, desc="unet")
    with atomic_dir(Path(cfg.output_dir) / "pipeline" / "unet") as tmp:
        result.model.eval().save_pretrained(tmp)
    metrics = {"steps": result.step, "init": cfg.unet_init, **result.metrics}
    write_card(cfg, "unet", metrics)
    return metrics


@torch.no_grad()
def generate_for_eval(pipe, prompts: list[str], seeds: list[int], guidance_scale: float, batch_size: int = 64,
                      num_inference_steps: int = 25) -> torch.Tensor:
    """Images (N, 3, H, W) in [0, 1] for prompt i with seed seeds[i] (25 DDIM steps)."""
    return seeded_images(pipe, prompts, seeds, batch_size=batch_size, guidance_scale=guidance_scale,
                           num_inference_steps=num_inference_steps)


def snapshot_unet(cfg: BundleConfig) -> dict:
    """Write the EMA weights of the UNet run's latest checkpoint to pipeline/unet (training goes on)."""
    ckpt = find_checkpoint(Path(cfg.work_dir) / "unet", "latest")
    if ckpt is None:
        raise FileNotFoundError(f"no UNet checkpoint in {Path(cfg.work_dir) / 'unet'}; run the `unet` part first.")
    ema = torch.load(ckpt / "custom_checkpoint_0.pkl", map_location="cpu", weights_only=False)
    unet = build_unet()
    params = list(unet.parameters())
    if len(params) != len(ema["shadow_params"]):
        raise ValueError(f"{ckpt} holds {len(ema['shadow_params'])} EMA tensors, the UNet has {len(params)}.")
    with torch.no_grad():
        for p, shadow in zip(params, ema["shadow_params"]):
            p.copy_(shadow)
    with atomic_dir(Path(cfg.output_dir) / "pipeline" / "unet") as tmp:
        unet.save_pretrained(tmp)
    metrics = {"snapshot_of_step": ema["optimization_step"], "status": "training in progress", "init": cfg.unet_init}
    write_card(cfg, "unet", metrics)
    return metrics


def assemble(cfg: BundleConfig) -> dict:
    """Write the complete diffusers pipeline folder (model_index.json + every component) atomically."""
    unet_dir = Path(cfg.output_dir) / "pipeline" / "unet"
    if not (unet_dir / "config.json").is_file():
        raise FileNotFoundError(f"no UNet at {unet_dir}; run the `unet` part first.")
    pipe = world_pipeline(cfg, UNet2DConditionModel.from_pretrained(unet_dir))
    target = Path(cfg.output_dir) / "pipeline"
    with atomic_dir(target) as tmp:
        pipe.save_pretrained(tmp)
    metrics = {"bundle_size_mb": bundle_size_mb(cfg.output_dir)}
    write_card(cfg, "assemble", metrics)
    return metrics
