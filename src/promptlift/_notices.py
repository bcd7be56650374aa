"""Third-party notices that say nothing about a promptlift run, filtered out of the logs at import (the CLI and the
Python API alike): each names the logger and the words of the notice, so every other message still shows."""

from __future__ import annotations

import logging
import warnings

__all__ = ["quiet_third_party_notices"]

NOTICES = {
    # diffusers, for a text encoder a LoRA has no layers for (every UNet LoRA: nothing is wrong; the UNet's own
    # "no keys" warning, which can mean a LoRA that loads nothing, still shows)
    "diffusers.loaders.lora_base": "No LoRA keys associated to",
    # bitsandbytes' CPU backend, imported by peft and diffusers whenever bitsandbytes is installed (the `bnb` extra for
    # 8-bit AdamW), looks for an optional 4-bit kernel package promptlift never uses
    "bitsandbytes.backends.cpu.ops": "Failed to load CPU gemm_4bit_forward",
    # transformers' image processors fall back to PIL without torchvision, which promptlift does not install
    "transformers.utils.import_utils": "requires torchvision (not installed)",
}


class _Notice(logging.Filter):
    def __init__(self, words: str):
        super().__init__()
        self.words = words

    def filter(self, record: logging.LogRecord) -> bool:
        return self.words not in record.getMessage()


# warnings, by their words: transformers deprecates a property peft reads whenever an LM with a LoRA loads or merges
WARNINGS = ("`is_gradient_checkpointing` is deprecated",)


def quiet_third_party_notices() -> None:
    """Add the filters, once per process."""
    for words in WARNINGS:
        warnings.filterwarnings("ignore", message=f".*{words}", category=FutureWarning)
    for name, words in NOTICES.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _Notice) for f in logger.filters):
            logger.addFilter(_Notice(words))
