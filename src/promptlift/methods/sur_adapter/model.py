"""The SUR-adapter (Zhong et al. 2023, arXiv 2305.05189): a small adapter on the text encoder's output.

Architecture (docs/architecture.md, "The four methods"): two transformer-encoder layers over the text embedding x (B, L, D), a token
attention whose queries come from the transformer output and whose keys and values are x (with a residual),
an MLP with a residual, and a zero-initialised output Linear; the result is beta * adapter(x) + (1 - beta) * x.
Fixed here (the official code's defects): batch-first attention with a padding mask, so samples (and the
CFG pair) never mix; a trainable LLM projection saved with the adapter; dimensions from the text encoder;
no dropout at inference (eval mode).

Beyond the paper (`llm_tokens`): the transformer layers also cross-attend over the teacher's token states, with
learned positions added to the queries, so what the teacher knows about each word of an unseen phrasing reaches
every output position rather than one pooled vector added to all of them. With `slots`, K learned attention pools
over the teacher's tokens (the form of the one-query probe that reads attributes off the teacher best, generalising
to unseen phrasings where a mean does not: research/teacher_probe.py) are added to every query and read as K more
memory tokens (or, with `pools_only`, as the only ones: a bottleneck, so the output follows only what the pools
carry); an attribute head then reads pool j for attribute j, as the probe does. With `class_memory` the adapter reads
each labelled attribute as its head's class probabilities times learnt class embeddings (classify, then render), in
place of the pool vector, which a decoder trained on the training phrasings' pools reads wrong on unseen ones; with
`probe_head` the head and its pools learn from the labels alone, as the probe does, and the adapter renders their
classes without moving them (in the world it classifies as the jointly trained head does: benchmarks/results/
narrative-notes.md). With `gate`, a small head on the base model's own embedding of the prompt scores whether the
base model already reads it (trained on the triples' columns: complex or literal prompts, which it draws right,
against narrative ones); the lift applies the adapter's change weighted by that probability (`SURAdapterLift`, gate
"learnt").
"""

from __future__ import annotations

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

__all__ = ["SURAdapter"]


class SURAdapter(nn.Module, PyTorchModelHubMixin):
    """Adapter over (B, L, D) prompt embeddings, with a projection of pooled LLM features (B, D_llm) to D.

    Args:
        dim: the text encoder's hidden size (768 SD1.x, 1024 SD2.x, 2048 for SDXL's concatenation).
        llm_dim: the LLM teacher's feature size (384 for all-MiniLM-L6-v2, 4096 for LLaMA-7B).
        beta: mixing weight of the adapter's output (the paper's 0.1).
        llm_at_inference: also add the projected LLM features to the transformer output at inference
            (a mode the paper lacks, for phrasings the adapter never saw).
        pooled_dim: SDXL's pooled-embedding size (1280): adds a zero-initialised head adapting it as well.
        llm_tokens: the layers cross-attend over the teacher's token states (B, T, D_llm) (implies
            `llm_at_inference`); learned positions (up to `max_length`) are added to the queries.
        read_prompt_embeds: with `llm_tokens`, the queries start from the prompt's own embedding and the token
            attention reads it (True), or the queries are the learned positions alone and the teacher's tokens are
            the adapter's only input (False): nothing can be learnt from the encoder's vectors of words it was never
            trained on, which are noise to it.
        attribute_classes: classes per labelled attribute: a linear head on the adapted embedding's mean over
            positions (on pool j for attribute j with `slots`), for the training's attribute term
            (`classify_attributes`); inference does not run it.
        slots: with `llm_tokens`, K attention pools over the teacher's tokens (each a softmax over tokens of a linear
            score): their weighted means, projected, are added to every query and read as K more memory tokens.
        pools_only: with `slots`, the pools are the only memory the adapter reads (not the teacher's tokens).
        class_memory: with `slots` and `attribute_classes`, pool j of attribute j reaches the adapter as the head's
            class probabilities times learnt class embeddings, not as the pool; the queries get no pool added.
        probe_head: with `class_memory`, `pools_only` and one pool per attribute: the rendering reads the head's
            probabilities detached, so the head, its pools and the teacher's norm learn from the attribute term alone.
        gate: a head scoring, from the prompt's base embedding alone, the probability that the adapter should change
            it (`adapt_probability`): an attention pool and the max over its tokens, then a linear score.
        llm_norm: with `llm_tokens`, a LayerNorm on the teacher's token states before anything reads them; False
            reads them as they are, as the teacher probe does (in the world the norm cost its pools 3 points of colour).
    """

    def __init__(self, dim: int, llm_dim: int, num_layers: int = 2, num_heads: int = 8, mlp_ratio: int = 4,
                 dropout: float = 0.1, beta: float = 0.1, llm_at_inference: bool = False, pooled_dim: int | None = None,
                 llm_tokens: bool = False, max_length: int = 77, read_prompt_embeds: bool = True,
                 attribute_classes: list[int] | None = None, slots: int = 0, pools_only: bool = False,
                 class_memory: bool = False, probe_head: bool = False, gate: bool = False, llm_norm: bool = True):
        super().__init__()
        if not 0 < beta <= 1:
            raise ValueError(f"`beta` must be in (0, 1], got {beta}.")
        if dim % num_heads:
            raise ValueError(f"`dim` {dim} must be divisible by `num_heads` {num_heads}.")
        if llm_tokens and not llm_at_inference:
            raise ValueError("`llm_tokens` reads the teacher's token states at inference: set `llm_at_inference` too.")
        if slots and not llm_tokens:
            raise ValueError("`slots` pool the teacher's token states: set `llm_tokens`.")
        if pools_only and not slots:
            raise ValueError("`pools_only` reads the teacher through its pools only: set `slots`.")
        if class_memory and not (slots and attribute_classes):
            raise ValueError("`class_memory` renders the attribute head's classes of the pools: set `slots` and "
                             "`attribute_classes`.")
        if probe_head and not (class_memory and pools_only and slots == len(attribute_classes)):
            raise ValueError("`probe_head` keeps the head's input its own: set `class_memory` and `pools_only`, with one "
                             f"pool per attribute (`slots` {len(attribute_classes or [])}, got {slots}).")
        if slots and attribute_classes and slots < len(attribute_classes):
            raise ValueError(f"the attribute head reads pool j for attribute j: {len(attribute_classes)} attributes need "
                             f"`slots` >= {len(attribute_classes)}, got {slots}.")
        if not (read_prompt_embeds or llm_tokens):
            raise ValueError("an adapter that does not read the prompt embeddings reads the teacher's tokens: set `llm_tokens`.")
        self.beta, self.llm_at_inference, self.llm_tokens = beta, llm_at_inference, llm_tokens
        self.read_prompt_embeds = read_prompt_embeds
        if llm_tokens:  # self-attention over the prompt's tokens, cross-attention over the teacher's
            layer = nn.TransformerDecoderLayer(dim, num_heads, dim * mlp_ratio, dropout, batch_first=True, norm_first=True)
            self.encoder = nn.TransformerDecoder(layer, num_layers)
            self.llm_norm = nn.LayerNorm(llm_dim) if llm_norm else nn.Identity()
            self.position = nn.Parameter(torch.randn(max_length, dim) * 0.02)
        else:
            layer = nn.TransformerEncoderLayer(dim, num_heads, dim * mlp_ratio, dropout, batch_first=True, norm_first=True)
            self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        if read_prompt_embeds:
            self.token_attention = nn.MultiheadAttention(dim, num_heads, dropout=dropout, batch_first=True)
        self.mlp = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim * mlp_ratio), nn.GELU(), nn.Linear(dim * mlp_ratio, dim))
        self.out = nn.Linear(dim, dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.llm_projection = nn.Linear(llm_dim, dim)
        self.slots, self.pools_only, self.class_memory, self.probe_head = slots, pools_only, class_memory, probe_head
        if slots:
            self.slot_scores = nn.Linear(llm_dim, slots)
            if not class_memory:
                self.slot_projection = nn.Linear(slots * llm_dim, dim)
        self.attribute_classes = list(attribute_classes or [])
        self.attribute_head = None
        if self.attribute_classes:
            self.attribute_head = (nn.ModuleList(nn.Linear(llm_dim, c) for c in self.attribute_classes) if slots
                                   else nn.Linear(dim, sum(self.attribute_classes)))
        if class_memory:
            self.class_embeddings = nn.ParameterList(nn.Parameter(torch.randn(c, dim)) for c in self.attribute_classes)
        self.gate = gate
        if gate:  # its own parameters on the base embedding: it neither reads nor moves the adapter
            self.gate_norm = nn.LayerNorm(dim)
            self.gate_score = nn.Linear(dim, 1)
            self.gate_out = nn.Linear(2 * dim, 1)
        self.pooled = None
        if pooled_dim:  # SDXL: the pooled embedding of text_encoder_2 conditions the UNet too
            self.pooled = nn.Sequential(nn.LayerNorm(pooled_dim + dim), nn.Linear(pooled_dim + dim, pooled_dim), nn.GELU(),
                                        nn.Linear(pooled_dim, pooled_dim))
            nn.init.zeros_(self.pooled[-1].weight)
            nn.init.zeros_(self.pooled[-1].bias)

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None = None, llm_features: torch.Tensor | None = None,
                llm_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(adapted embeddings (B, L, D), transformer output (B, L, D) for the LLM distillation term).

        padding_mask: (B, L) bool, True where a token is padding (it is neither attended to nor changes others).
        llm_features: pooled (B, D_llm), or with `llm_tokens` the teacher's token states (B, T, D_llm) and
        llm_mask (B, T) bool, True at the teacher's real tokens.
        """
        if self.llm_tokens:
            if llm_features is None or llm_features.dim() != 3:
                raise ValueError("this adapter reads the teacher's token states: pass `llm_features` (B, T, D_llm) "
                                 "and `llm_mask`.")
            tokens = self.llm_norm(llm_features)
            memory = self.llm_projection(tokens)  # (B, T, D)
            queries = self.position[: x.shape[1]].expand_as(x)
            if self.read_prompt_embeds:
                queries = queries + x
            no_memory = None if llm_mask is None else ~llm_mask
            if self.slots:
                pools = self._pool(tokens, llm_mask)  # (B, K, D_llm)
                if self.class_memory:  # attribute j as its classes' embeddings, weighted by the head's probabilities
                    attributes = len(self.attribute_classes)
                    probabilities = [head(pools[:, j]).softmax(-1) for j, head in enumerate(self.attribute_head)]
                    if self.probe_head:  # the head is the attribute term's alone
                        probabilities = [p.detach() for p in probabilities]
                    rendered = [p @ e for p, e in zip(probabilities, self.class_embeddings)]
                    pooled = torch.cat([torch.stack(rendered, 1), self.llm_projection(pools[:, attributes:])], dim=1)
                else:
                    queries = queries + self.slot_projection(pools.flatten(1))[:, None, :]
                    pooled = self.llm_projection(pools)
                memory = torch.cat([memory, pooled], dim=1)
                if self.pools_only:
                    memory, no_memory = memory[:, -self.slots :], None
                if no_memory is not None:
                    no_memory = torch.cat([no_memory, no_memory.new_zeros(no_memory.shape[0], self.slots)], dim=1)
            h = self.encoder(queries, memory, tgt_key_padding_mask=padding_mask if self.read_prompt_embeds else None,
                             memory_key_padding_mask=no_memory)
        else:
            h = self.encoder(x, src_key_padding_mask=padding_mask)  # (B, L, D)
            if self.llm_at_inference and llm_features is not None:
                h = h + self.llm_projection(llm_features)[:, None, :]
        # Token attention: queries from the transformer output, keys and values the original embedding.
        a = h
        if self.read_prompt_embeds:
            a = a + self.token_attention(h, x, x, key_padding_mask=padding_mask, need_weights=False)[0]
        m = a + self.mlp(a)
        y = self.beta * self.out(m) + (1 - self.beta) * x  # (B, L, D)
        return y, h

    def adapt_pooled(self, pooled: torch.Tensor, adapted: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """SDXL's pooled embedding (B, P), moved by what the adapter made of the tokens (mean of `adapted` over real
        tokens); unchanged when the adapter has no pooled head (SD1.x/2.x)."""
        if self.pooled is None:
            return pooled
        real = torch.ones(adapted.shape[:2], device=adapted.device) if padding_mask is None else (~padding_mask).float()
        mean = (adapted * real[..., None]).sum(1) / real.sum(1, keepdim=True).clamp_min(1)
        return pooled + self.beta * self.pooled(torch.cat([pooled, mean], dim=-1))

    def _pool(self, tokens: torch.Tensor, llm_mask: torch.Tensor | None) -> torch.Tensor:
        """(B, K, D_llm): the K attention pools of the (normalised) teacher tokens (B, T, D_llm)."""
        scores = self.slot_scores(tokens)  # (B, T, K)
        if llm_mask is not None:
            scores = scores.masked_fill(~llm_mask[..., None], float("-inf"))
        return torch.einsum("btk,btd->bkd", scores.softmax(1), tokens)

    def classify_attributes(self, adapted: torch.Tensor, llm_features: torch.Tensor | None = None,
                            llm_mask: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Logits (B, classes) per labelled attribute: from the adapted embedding (B, L, D) averaged over positions,
        or with `slots` from pool j of the teacher's token states (B, T, D_llm) for attribute j."""
        if self.attribute_head is None:
            raise ValueError("this adapter has no attribute head: build it with `attribute_classes`.")
        if not self.slots:
            return list(self.attribute_head(adapted.mean(1)).split(self.attribute_classes, dim=-1))
        if llm_features is None:
            raise ValueError("this adapter's attribute head reads its pools of the teacher's tokens: pass `llm_features`.")
        pools = self._pool(self.llm_norm(llm_features), llm_mask)
        return [head(pools[:, j]) for j, head in enumerate(self.attribute_head)]

    def gate_logit(self, x: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B,) logit that the adapter should change the prompt whose base embedding is x (B, L, D) (`gate`)."""
        if not self.gate:
            raise ValueError("this adapter has no learnt gate: build it with `gate=True`.")
        h = self.gate_norm(x)
        scores = self.gate_score(h).squeeze(-1)  # (B, L)
        lowest = torch.finfo(h.dtype).min
        if padding_mask is not None:
            scores = scores.masked_fill(padding_mask, float("-inf"))
            h_max = h.masked_fill(padding_mask[..., None], lowest)
        else:
            h_max = h
        pooled = torch.einsum("bl,bld->bd", scores.softmax(1), h)
        return self.gate_out(torch.cat([pooled, h_max.amax(1)], dim=-1)).squeeze(-1)

    def project_llm(self, llm_features: torch.Tensor) -> torch.Tensor:
        """Pooled LLM features (B, D_llm) -> (B, D), the teacher side of the LLM distillation term."""
        if self.llm_tokens:
            llm_features = self.llm_norm(llm_features)
        return self.llm_projection(llm_features)
