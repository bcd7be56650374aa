"""TextCraftor: reward fine-tuning of the text encoder (Li et al. 2024); registers the `textcraftor` lift."""

from pathlib import Path

from ...pipeline import register_lift
from .lift import TextCraftorLift

__all__ = ["TextCraftorLift"]

BUNDLE_WEIGHTS = Path(__file__).resolve().parents[2] / "bundle" / "textcraftor"


@register_lift("textcraftor", help="TextCraftor-tuned text encoder(s); PATH or a mix a:0.7,b:0.3; default: the bundle's.",
               default_path=lambda: BUNDLE_WEIGHTS if BUNDLE_WEIGHTS.is_dir() else None, path_is_spec=True)
def _textcraftor_lift(name: str, path: Path | None, alpha: float = 1.0, switch_step: int | None = None) -> TextCraftorLift:
    return TextCraftorLift(name, path, alpha=alpha, switch_step=switch_step)
