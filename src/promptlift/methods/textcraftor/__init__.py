"""TextCraftor: reward fine-tuning of the text encoder (Li et al. 2024); registers the `textcraftor` method and lift."""

from typing import TYPE_CHECKING

from ..._lazy import lazy_exports
from ..registry import register_method
from .config import TextCraftorConfig

__getattr__, __dir__ = lazy_exports(__name__, {"TextCraftorLift": ".lift"})
if TYPE_CHECKING:
    from .lift import TextCraftorLift

__all__ = ["TextCraftorConfig", "TextCraftorLift"]

register_method("textcraftor", config=TextCraftorConfig, trainer=f"{__name__}.trainer:train",
                lift=f"{__name__}.lift:textcraftor_lift",
                help="TextCraftor: reward fine-tuning of the text encoder through the last sampling steps.",
                lift_help="TextCraftor-tuned text encoder(s); PATH or a mix a:0.7,b:0.3; default: the bundle's.",
                path_is_spec=True)
