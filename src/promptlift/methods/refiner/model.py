"""The prompt refiner of UF-FGTG (Hei et al. 2024, arXiv 2402.12760): text encoder -> domain adapter -> decoder.

- The text encoder is the pipeline's own (frozen): coarse prompt -> x (B, L, D).
- The domain adapter (two pre-norm transformer layers with a padding mask, a zero-initialised output and a
  residual) maps x into the fine prompts' region of the same space: a (B, L, D). Because `a` lives where prompt
  embeddings live, it also conditions the UNet directly (the plug-and-play strategy).
- The adaptive feature extraction module: M learned queries attend over `a`, giving M "mode" vectors; the
  decoder reads `a` plus one mode vector, so each mode can specialise in a way of refining (trained
  winner-take-all), and candidates drawn from different modes differ.
- The decoder is a T5-architecture decoder (transformers' T5ForConditionalGeneration fed `encoder_outputs`; its
  one-layer T5 encoder is never run), over the pipeline's own tokenizer, so every refined prompt is counted in
  the text encoder's tokens. It may write a subset of that tokenizer (`token_ids`, e.g. the tokens of the training
  fine prompts): its output layer then has hundreds of rows instead of the tokenizer's tens of thousands.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import T5Config, T5ForConditionalGeneration
from transformers.cache_utils import DynamicCache, EncoderDecoderCache
from transformers.modeling_outputs import BaseModelOutput

from ...files import atomic_dir, json_text

__all__ = ["PromptRefiner"]

CONFIG_FILE, WEIGHTS_FILE = "refiner_config.json", "adapter.safetensors"


class PromptRefiner(nn.Module):
    """Adapter + adaptive feature extraction + T5 decoder on top of a frozen text encoder's embeddings."""

    def __init__(self, text_dim: int, vocab_size: int, bos_token_id: int, eos_token_id: int, pad_token_id: int,
                 d_model: int = 256, num_decoder_layers: int = 3, num_heads: int = 4, num_modes: int = 3,
                 adapter_layers: int = 2, dropout: float = 0.1, num_decoder_tokens: int | None = None,
                 token_ids: torch.Tensor | None = None):
        """`vocab_size` and the special ids are the tokenizer's; the decoder writes `token_ids` (sorted tokenizer ids,
        the specials among them; default: all `vocab_size`), `num_decoder_tokens` of them."""
        super().__init__()
        if token_ids is None:
            token_ids = torch.arange(num_decoder_tokens or vocab_size)
        token_ids = torch.as_tensor(token_ids, dtype=torch.long)
        self.config = dict(text_dim=text_dim, vocab_size=vocab_size, bos_token_id=bos_token_id,
                           eos_token_id=eos_token_id, pad_token_id=pad_token_id, d_model=d_model,
                           num_decoder_layers=num_decoder_layers, num_heads=num_heads, num_modes=num_modes,
                           adapter_layers=adapter_layers, dropout=dropout, num_decoder_tokens=len(token_ids))
        if text_dim % num_heads or d_model % num_heads:
            raise ValueError(f"`num_heads` {num_heads} must divide text_dim {text_dim} and d_model {d_model}.")
        # tokenizer id -> decoder id (-1: a token the decoder cannot write)
        self.register_buffer("token_ids", token_ids)
        lookup = torch.full((vocab_size,), -1, dtype=torch.long)
        lookup[token_ids] = torch.arange(len(token_ids))
        self.register_buffer("decoder_index", lookup, persistent=False)
        bos, eos, pad = (int(lookup[i]) for i in (bos_token_id, eos_token_id, pad_token_id))
        if min(bos, eos, pad) < 0:
            raise ValueError("`token_ids` must contain the bos, eos and pad token ids.")
        layer = nn.TransformerEncoderLayer(text_dim, num_heads, 4 * text_dim, dropout, batch_first=True, norm_first=True)
        self.adapter = nn.TransformerEncoder(layer, adapter_layers, enable_nested_tensor=False)
        self.adapter_out = nn.Linear(text_dim, text_dim)
        nn.init.zeros_(self.adapter_out.weight)
        nn.init.zeros_(self.adapter_out.bias)
        self.mode_queries = nn.Parameter(torch.randn(num_modes, text_dim))
        self.mode_attention = nn.MultiheadAttention(text_dim, num_heads, batch_first=True)
        self.to_decoder = nn.Linear(text_dim, d_model)
        t5 = T5Config(vocab_size=len(token_ids), d_model=d_model, d_kv=d_model // num_heads, d_ff=4 * d_model,
                      num_layers=1, num_decoder_layers=num_decoder_layers, num_heads=num_heads, dropout_rate=dropout,
                      decoder_start_token_id=bos, eos_token_id=eos, pad_token_id=pad, tie_word_embeddings=False)
        self.decoder = T5ForConditionalGeneration(t5)
        # T5 initialises an untied output layer with std 1: logits of std sqrt(d_model) and a first cross-entropy
        # of tens of nats; std d_model^-0.5 starts the logits near unit scale (cross-entropy near log(vocabulary))
        nn.init.normal_(self.decoder.lm_head.weight, std=d_model**-0.5)

    @property
    def num_modes(self) -> int:
        return self.mode_queries.shape[0]

    def to_decoder_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """Tokenizer ids -> decoder ids (-100 stays -100); a token the decoder cannot write is an error."""
        mapped = torch.where(ids == -100, ids, self.decoder_index.to(ids.device)[ids.clamp_min(0)])
        if (mapped == -1).any():
            raise ValueError("the targets hold tokens outside the refiner's decoder vocabulary (`token_ids`).")
        return mapped

    def writable(self, ids: list[int]) -> list[int]:
        """The decoder ids of the tokenizer ids `ids` it can write (others are left out of its context)."""
        index = self.decoder_index[torch.tensor(ids, dtype=torch.long)]
        return index[index >= 0].tolist()

    def to_tokenizer_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """Decoder ids -> tokenizer ids."""
        return self.token_ids.to(ids.device)[ids]

    def adapt(self, x: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Coarse prompt embeddings (B, L, D) -> adapted embeddings (B, L, D), usable as `prompt_embeds`."""
        return x + self.adapter_out(self.adapter(x, src_key_padding_mask=padding_mask))

    def memory(self, adapted: torch.Tensor, padding_mask: torch.Tensor | None, mode: int | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The decoder's memory for `mode` (an int, or (B,) per sample): [mode vector; adapted tokens] in d_model,
        and its attention mask (B, 1 + L)."""
        b = adapted.shape[0]
        modes = self.mode_vectors(adapted, padding_mask)
        index = torch.full((b,), mode, device=adapted.device) if isinstance(mode, int) else mode
        chosen = modes[torch.arange(b, device=adapted.device), index][:, None]  # (B, 1, D)
        mem = self.to_decoder(torch.cat([chosen, adapted], dim=1))
        keep = torch.ones(b, adapted.shape[1], dtype=torch.long, device=adapted.device)
        if padding_mask is not None:
            keep = (~padding_mask).long()
        return mem, torch.cat([torch.ones(b, 1, dtype=torch.long, device=adapted.device), keep], dim=1)

    def mode_vectors(self, adapted: torch.Tensor, padding_mask: torch.Tensor | None) -> torch.Tensor:
        """(B, M, D): every mode's vector, its learned query plus what it reads from the adapted tokens (the
        residual keeps modes apart from the start; attention alone averages the same tokens into near-copies)."""
        queries = self.mode_queries[None].expand(adapted.shape[0], -1, -1)
        read = self.mode_attention(queries, adapted, adapted, key_padding_mask=padding_mask, need_weights=False)[0]
        return queries + read

    def token_losses(self, adapted: torch.Tensor, padding_mask: torch.Tensor | None, labels: torch.Tensor,
                     mode: int) -> torch.Tensor:
        """(B,) mean cross-entropy of the fine prompt `labels` (B, T; -100 ignored) under `mode`."""
        mem, mask = self.memory(adapted, padding_mask, mode)
        logits = self.decoder(encoder_outputs=BaseModelOutput(last_hidden_state=mem), attention_mask=mask,
                              decoder_input_ids=self.decoder._shift_right(labels)).logits
        ce = nn.functional.cross_entropy(logits.transpose(1, 2).float(), labels, ignore_index=-100, reduction="none")
        real = (labels != -100).float()
        return (ce * real).sum(1) / real.sum(1).clamp_min(1)

    @torch.no_grad()
    def generate(self, adapted: torch.Tensor, padding_mask: torch.Tensor | None, mode: int,
                 prefix_ids: torch.Tensor, **generate_kwargs) -> torch.Tensor:
        """Continue `prefix_ids` (B, T decoder ids, starting with bos) under `mode`; returns the full sequences."""
        mem, mask = self.memory(adapted, padding_mask, mode)
        # a cache that grows per layer: the default one is sized by the (one-layer, unused) T5 encoder
        cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
        return self.decoder.generate(encoder_outputs=BaseModelOutput(last_hidden_state=mem), attention_mask=mask,
                                     decoder_input_ids=prefix_ids, past_key_values=cache, **generate_kwargs)

    # -- folders ------------------------------------------------------------------------------

    def save_pretrained(self, folder: str | Path, extra: dict | None = None) -> Path:
        """refiner_config.json + adapter.safetensors (adapter, modes) + decoder/ (a transformers T5 folder), atomically."""
        with atomic_dir(Path(folder)) as tmp:
            state = {k: v.contiguous() for k, v in self.state_dict().items() if not k.startswith("decoder.")}
            save_file(state, tmp / WEIGHTS_FILE)
            self.decoder.save_pretrained(tmp / "decoder")
            (tmp / CONFIG_FILE).write_text(json_text({**self.config, **(extra or {})}, indent=2))
        return Path(folder)

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> "PromptRefiner":
        folder = Path(folder)
        if not (folder / CONFIG_FILE).is_file():
            raise ValueError(f"{str(folder)!r} holds no refiner ({CONFIG_FILE}); pass the output of "
                             "`promptlift train refiner` (its best/ or final/ folder).")
        config = json.loads((folder / CONFIG_FILE).read_text())
        keys = ("text_dim", "vocab_size", "bos_token_id", "eos_token_id", "pad_token_id", "d_model",
                "num_decoder_layers", "num_heads", "num_modes", "adapter_layers", "dropout", "num_decoder_tokens")
        weights = load_file(folder / WEIGHTS_FILE)
        model = cls(**{k: config.get(k) for k in keys}, token_ids=weights.get("token_ids"))
        missing, unexpected = model.load_state_dict(weights, strict=False)
        missing = [k for k in missing if not k.startswith("decoder.")]
        if missing or unexpected:
            raise ValueError(f"refiner {str(folder)!r}: weights do not match its config (missing {missing[:5]}, "
                             f"unexpected {unexpected[:5]}).")
        decoder = T5ForConditionalGeneration.from_pretrained(folder / "decoder")
        model.decoder = decoder
        model.extra = {k: v for k, v in config.items() if k not in model.config}
        return model.eval()
