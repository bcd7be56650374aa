"""Sampling with gradients through the last K steps (TextCraftor, Li et al. 2024, arXiv 2403.18978, section 3).

The first `num_inference_steps - grad_steps` steps run without gradient, conditioned on the frozen original text
encoder; the last `grad_steps` run with the trainable conditioning, each UNet call under gradient checkpointing
(its activations are recomputed in the backward pass), then the VAE decodes with gradient. Peak memory therefore
depends on K, not on the total number of steps. Only the UNet calls are checkpointed: the scheduler's step stays
outside, so schedulers that keep state between steps (multistep solvers) are stepped exactly once per step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.checkpoint import checkpoint

__all__ = ["Conditioning", "decode", "sample_with_grad"]


@dataclass
class Conditioning:
    """The UNet's text conditioning for one sampling call: [unconditional; conditional] stacked when CFG is on."""

    hidden: torch.Tensor  # (B or 2B, L, D)
    added: dict[str, torch.Tensor] | None = None  # SDXL: text_embeds (pooled) and time_ids, stacked the same way


def _combine(pred: torch.Tensor, guidance_scale: float) -> torch.Tensor:
    if guidance_scale <= 1:
        return pred
    uncond, text = pred.chunk(2)
    return uncond + guidance_scale * (text - uncond)


def sample_with_grad(unet, scheduler, latents: torch.Tensor, frozen: Conditioning, trainable: Conditioning,
                     num_inference_steps: int, grad_steps: int, guidance_scale: float,
                     gradient_checkpointing: bool = True) -> torch.Tensor:
    """Denoise `latents` (already scaled by `init_noise_sigma`); returns the final latents, differentiable in
    `trainable` (and in any trainable UNet weights) through the last `grad_steps` steps.

    With checkpointing, the unconditional and conditional UNet passes of a gradient step are separate checkpoints,
    so the backward pass recomputes one batch of B at a time, not the CFG batch of 2B.
    """
    if not 1 <= grad_steps <= num_inference_steps:
        raise ValueError(f"`grad_steps` must be in [1, num_inference_steps={num_inference_steps}], got {grad_steps}.")
    scheduler.set_timesteps(num_inference_steps, device=latents.device)
    first_grad = num_inference_steps - grad_steps
    keys = sorted(trainable.added) if trainable.added else []
    guided = guidance_scale > 1

    def unet_pass(x, t, hidden, *added):
        return unet(x, t, encoder_hidden_states=hidden, added_cond_kwargs=dict(zip(keys, added)) if keys else None).sample

    for i, t in enumerate(scheduler.timesteps):
        with_grad = i >= first_grad
        cond = trainable if with_grad else frozen
        x = scheduler.scale_model_input(latents, t)
        added = [cond.added[k] for k in keys]
        with torch.set_grad_enabled(with_grad):
            if with_grad and gradient_checkpointing:
                halves = zip(cond.hidden.chunk(2), *(a.chunk(2) for a in added)) if guided else [(cond.hidden, *added)]
                pred = torch.cat([checkpoint(unet_pass, x, t, *h, use_reentrant=False) for h in halves])
            else:
                pred = unet_pass(torch.cat([x, x]) if guided else x, t, cond.hidden, *added)
            latents = scheduler.step(_combine(pred, guidance_scale), t, latents, return_dict=False)[0]
    return latents


def decode(vae, latents: torch.Tensor, gradient_checkpointing: bool = True) -> torch.Tensor:
    """VAE-decode to images in [0, 1] with gradient. Checkpointed one image at a time: the backward pass
    recomputes the decoder for a single image at once, so its activations never exist for the whole batch."""
    z = latents / vae.config.scaling_factor
    if getattr(vae.config, "shift_factor", None):
        z = z + vae.config.shift_factor

    def run(z):
        return vae.decode(z, return_dict=False)[0]

    if gradient_checkpointing and z.requires_grad:
        images = torch.cat([checkpoint(run, z[i : i + 1], use_reentrant=False) for i in range(len(z))])
    else:
        images = run(z)
    return (images / 2 + 0.5).clamp(0, 1)
