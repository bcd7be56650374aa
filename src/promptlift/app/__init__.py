"""The web app (Gradio): refine-and-pick with base vs lifted images, blind A/B rating, curation review."""

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "AppState": ".state", "ServeConfig": ".config", "UserError": ".state", "QUESTIONS": ".votes",
    "VoteStore": ".votes",
})

if TYPE_CHECKING:  # the same names, for type checkers
    from .config import ServeConfig
    from .state import AppState, UserError
    from .votes import QUESTIONS, VoteStore


__all__ = ["AppState", "QUESTIONS", "ServeConfig", "UserError", "VoteStore"]
