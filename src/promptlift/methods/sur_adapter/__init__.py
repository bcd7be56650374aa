"""SUR-adapter: an LLM-distilled adapter on the text embedding (Zhong et al. 2023); registers the `sur-adapter` method
and lift."""

from typing import TYPE_CHECKING

from ..._lazy import lazy_exports
from ..registry import register_method
from .config import SURAdapterConfig

__getattr__, __dir__ = lazy_exports(__name__, {"SURAdapter": ".model", "SURAdapterLift": ".lift"})
if TYPE_CHECKING:
    from .lift import SURAdapterLift
    from .model import SURAdapter

__all__ = ["SURAdapter", "SURAdapterConfig", "SURAdapterLift"]

register_method("sur-adapter", config=SURAdapterConfig, trainer=f"{__name__}.trainer:train",
                lift=f"{__name__}.lift:sur_adapter_lift",
                help="SUR-adapter: adapter on the prompt embeddings, LLM-distilled, frozen diffusion model.",
                lift_help="SUR-adapter on the prompt embeddings (adapter folder); default: the bundle's.")
