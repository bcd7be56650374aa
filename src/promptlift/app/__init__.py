"""The web app (Gradio): refine-and-pick with base vs lifted images, blind A/B rating, curation review."""

from .state import AppState, ServeConfig, UserError
from .votes import QUESTIONS, VoteStore

__all__ = ["AppState", "QUESTIONS", "ServeConfig", "UserError", "VoteStore"]
