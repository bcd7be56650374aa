"""TextCraftor: reward fine-tuning of the text encoder (Li et al. 2024); registers the `textcraftor` method and lift."""

from pathlib import Path

from ..registry import register_method
from .config import TextCraftorConfig
from .lift import TextCraftorLift

__all__ = ["TextCraftorConfig", "TextCraftorLift"]


@register_method("textcraftor", config=TextCraftorConfig, trainer=f"{__name__}.trainer:train",
                 help="TextCraftor: reward fine-tuning of the text encoder through the last sampling steps.",
                 lift_help="TextCraftor-tuned text encoder(s); PATH or a mix a:0.7,b:0.3; default: the bundle's.",
                 path_is_spec=True)
def _textcraftor_lift(name: str, path: Path | None, alpha: float = 1.0, switch_step: int | None = None) -> TextCraftorLift:
    return TextCraftorLift(name, path, alpha=alpha, switch_step=switch_step)
