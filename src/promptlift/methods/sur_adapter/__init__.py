"""SUR-adapter: an LLM-distilled adapter on the text embedding (Zhong et al. 2023)."""

from .model import SURAdapter

__all__ = ["SURAdapter"]
