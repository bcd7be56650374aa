"""SUR-adapter: an LLM-distilled adapter on the text embedding (Zhong et al. 2023); registers the `sur-adapter` lift."""

from pathlib import Path

from ...pipeline import register_lift
from .lift import SURAdapterLift
from .model import SURAdapter

__all__ = ["SURAdapter", "SURAdapterLift"]

BUNDLE_WEIGHTS = Path(__file__).resolve().parents[2] / "bundle" / "sur-adapter"


@register_lift("sur-adapter", help="SUR-adapter on the prompt embeddings (adapter folder); default: the bundle's.",
               default_path=lambda: BUNDLE_WEIGHTS if BUNDLE_WEIGHTS.is_dir() else None)
def _sur_adapter_lift(name: str, path: Path | None, apply_to_unconditional: bool = False,
                      reads: str = "user") -> SURAdapterLift:
    return SURAdapterLift(name, path, apply_to_unconditional, reads=reads)
