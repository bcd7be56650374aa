"""The denoising loss every UNet-side trainer shares (SD1.x/2.x epsilon or v-prediction, SDXL conditioning)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["UNET_LORA_TARGETS", "diffusion_loss", "noised", "sdxl_time_ids", "latent_dist_params", "sample_latents"]

UNET_LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]  # the UNet's attention projections, as diffusers' LoRA scripts


@torch.no_grad()
def latent_dist_params(vae, images: torch.Tensor) -> torch.Tensor:
    """(B, 2C, h, w): the VAE posterior's mean and log-variance of [0, 1] images (cache these, sample per step)."""
    return vae.encode(images.to(vae.dtype) * 2 - 1).latent_dist.parameters


def sample_latents(params: torch.Tensor, scaling_factor: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Scaled latents sampled from cached posterior parameters (B, 2C, h, w) -> (B, C, h, w)."""
    mean, logvar = params.chunk(2, dim=1)
    std = torch.exp(0.5 * logvar.clamp(-30.0, 20.0))
    noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype).to(mean.device)
    return (mean + std * noise) * scaling_factor


def sdxl_time_ids(height: int, width: int, batch: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """SDXL micro-conditioning (original size, crop top-left, target size) for uncropped images: (B, 6)."""
    return torch.tensor([[height, width, 0, 0, height, width]], dtype=dtype, device=device).repeat(batch, 1)


def noised(
    scheduler, latents: torch.Tensor, generator: torch.Generator | None = None, noise_offset: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(noisy latents, timesteps, target) at random timesteps: the target is the noise, or the velocity for
    v-prediction. `noise_offset` adds a per-channel constant to the noise (Guttenberg 2023), as Emu does."""
    b = latents.shape[0]
    noise = torch.randn(latents.shape, generator=generator).to(latents)
    if noise_offset:
        noise = noise + noise_offset * torch.randn((b, latents.shape[1], 1, 1), generator=generator).to(latents)
    t = torch.randint(0, scheduler.config.num_train_timesteps, (b,), generator=generator).to(latents.device)
    noisy = scheduler.add_noise(latents, noise, t)
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        target = noise
    elif kind == "v_prediction":
        target = scheduler.get_velocity(latents, noise, t)
    else:
        raise ValueError(f"prediction_type {kind!r} is not supported; use epsilon or v_prediction.")
    return noisy, t, target


def diffusion_loss(
    unet,
    scheduler,
    latents: torch.Tensor,
    encoder_hidden_states: torch.Tensor,
    generator: torch.Generator | None = None,
    noise_offset: float = 0.0,
    added_cond_kwargs: dict | None = None,
) -> torch.Tensor:
    """MSE between the UNet's prediction and its target (noise, or velocity for v-prediction) at random timesteps."""
    noisy, t, target = noised(scheduler, latents, generator, noise_offset)
    pred = unet(noisy, t, encoder_hidden_states, added_cond_kwargs=added_cond_kwargs).sample
    return F.mse_loss(pred.float(), target.float())
