"""SUR-adapter's distillation terms (pure functions); the diffusion term is training.diffusion.diffusion_loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["feature_kl", "sur_objective"]


def feature_kl(student: torch.Tensor, teacher: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
    """KL(softmax(teacher) || softmax(student)) over the feature axis, per token, averaged over real tokens.

    student (B, L, D); teacher (B, L, D) or (B, 1, D) (a pooled vector broadcast to every token);
    padding_mask (B, L) bool, True at padding.
    """
    log_p_student = F.log_softmax(student.float(), dim=-1)
    log_p_teacher = F.log_softmax(teacher.float(), dim=-1).expand_as(log_p_student)
    kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(-1)  # (B, L)
    if padding_mask is None:
        return kl.mean()
    real = (~padding_mask).float()
    return (kl * real).sum() / real.sum().clamp_min(1.0)


def sur_objective(diffusion: torch.Tensor, transformer_out: torch.Tensor, llm_projected: torch.Tensor,
                  complex_term: torch.Tensor, padding_mask: torch.Tensor | None, llm_weight: float = 1e-5,
                  complex_weight: float = 1e-5) -> tuple[torch.Tensor, dict]:
    """Diffusion MSE + llm_weight * KL(LLM -> transformer output) + complex_weight * the complex-prompt term.

    The paper's complex term is `feature_kl(adapted, complex_embeds)` and its weights are 1e-5 for both
    distillation terms (docs/architecture.md, "The four methods"); `complex_term` is computed by the caller so it may also be the
    UNet-output distillation the trainer offers.
    """
    llm = feature_kl(transformer_out, llm_projected[:, None, :], padding_mask)
    total = diffusion + llm_weight * llm + complex_weight * complex_term
    return total, {"diffusion": diffusion.detach(), "kl_llm": llm.detach(), "complex": complex_term.detach()}
