"""SUR-adapter: an LLM-distilled adapter on the text embedding (Zhong et al. 2023); registers the `sur-adapter` method
and lift."""

from pathlib import Path

from ..registry import register_method
from .config import SURAdapterConfig
from .lift import SURAdapterLift
from .model import SURAdapter

__all__ = ["SURAdapter", "SURAdapterConfig", "SURAdapterLift"]


@register_method("sur-adapter", config=SURAdapterConfig, trainer=f"{__name__}.trainer:train",
                 help="SUR-adapter: adapter on the prompt embeddings, LLM-distilled, frozen diffusion model.",
                 lift_help="SUR-adapter on the prompt embeddings (adapter folder); default: the bundle's.")
def _sur_adapter_lift(name: str, path: Path | None, apply_to_unconditional: bool = False,
                      reads: str = "default", rewrite_scale: float = 1.0, gate: str = "default") -> SURAdapterLift:
    return SURAdapterLift(name, path, apply_to_unconditional, reads=reads, rewrite_scale=rewrite_scale, gate=gate)
