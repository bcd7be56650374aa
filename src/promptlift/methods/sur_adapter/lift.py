"""The `sur-adapter` lift: the adapter edits the prompt embeddings before the UNet (the `prompt_embeds` seam)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ...pipeline import Lift, PromptEmbeds, plus_edits, prompt_padding_mask as padding_mask
from ...hub import load_hub_mixin
from .model import SURAdapter

__all__ = ["SURAdapterLift", "parse_gate", "relative_change"]

LIFT_FILE = "lift.json"  # the lift's defaults an adapter folder ships with (e.g. {"gate": "0.45:0.6", "reads": "user"})
LEARNT = "learnt"  # the gate the adapter was trained with (`gate_columns`)


def parse_gate(gate: str | None, name: str = "sur-adapter") -> tuple[float, float] | str | None:
    """"LOW:HIGH" -> (low, high) with 0 <= low < high; "learnt" -> "learnt"; None or "none" -> None."""
    if gate is None or str(gate).strip().lower() in ("", "none"):
        return None
    if str(gate).strip().lower() == LEARNT:
        return LEARNT
    try:
        low, high = (float(x) for x in str(gate).split(":"))
    except ValueError:
        low = high = float("nan")
    if not 0 <= low < high < float("inf"):  # also refuses NaN
        raise ValueError(f"lift {name!r}: gate={gate!r} must be LOW:HIGH with 0 <= LOW < HIGH (e.g. 0.45:0.6), learnt, "
                         "or none.")
    return low, high


def relative_change(adapted: torch.Tensor, base: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
    """(B,): the mean over each prompt's tokens (not its padding) of ||adapted - base|| / ||base||."""
    ratio = (adapted - base).float().norm(dim=-1) / base.float().norm(dim=-1).clamp_min(1e-6)
    real = (~padding).float()
    return (ratio * real).sum(1) / real.sum(1).clamp_min(1)


class SURAdapterLift(Lift):
    """Apply a trained SUR-adapter to the conditional prompt embeddings (and the unconditional ones if asked).

    PATH holds the adapter (config.json + model.safetensors) and, when it was trained to read LLM features at
    inference, `teacher.json` naming the LLM teacher and layer.

        >>> import promptlift
        >>> pipe = promptlift.load_pipeline()
        >>> sur = promptlift.SURAdapterLift("sur-adapter", promptlift.bundle_lift("sur-adapter"), gate="none")
        >>> promptlift.load_lift(pipe, sur)
        >>> promptlift.set_lifts(pipe, "sur-adapter", weights=0.5)   # half the adapter's change of the embedding
        >>> image = pipe("Picture a lone sphere the color of a grape by the seaside.", num_inference_steps=2).images[0]
    """

    def __init__(self, name: str, path: Path | None, apply_to_unconditional: bool = False, *, reads: str = "default",
                 rewrite_scale: float = 1.0, gate: str | None = "default", adapter: SURAdapter | None = None, teacher=None):
        """Load the adapter from `path`, or wrap an `adapter` (and its LLM `teacher`) in memory, as a trainer does.
        `reads`: which prompt the adapter adapts when a refiner rewrote it: the user's ("user"; the rewrite's change
        of the embedding, times `rewrite_scale`, is added to the adapter's) or the rewrite ("rewrite"; its phrases
        pass through the adapter: for an adapter trained on a refiner's rewrites). Default: the adapter folder's
        `lift.json` "reads", else "user".

        `gate` "LOW:HIGH" applies the adapter's change only to prompts it changes much: its relative change over the
        prompt's tokens, mean ||adapted - base|| / ||base||, is the weight's input, 0 at LOW or below, 1 at HIGH or above,
        linear between. A prompt the model already reads right (keywords, a literal description) is one the adapter
        learned to move little, and the gate leaves it as the other lifts make it. "learnt": the weight is the
        probability the adapter's own gate head (trained with `gate_columns`) gives, from the prompt's base embedding,
        that the base model does not already read the prompt. Default: the adapter folder's `lift.json` "gate", else
        "learnt" for an adapter with a gate head, else none (every prompt adapted in full); "none" turns it off."""
        spec = Path(path) / LIFT_FILE if path is not None else None
        defaults = json.loads(spec.read_text()) if spec is not None and spec.is_file() else {}
        reads = defaults.get("reads", "user") if reads == "default" else reads
        if reads not in ("user", "rewrite"):
            raise ValueError(f"lift {name!r}: reads={reads!r} must be 'user' or 'rewrite'.")
        if reads == "rewrite" and rewrite_scale != 1.0:
            raise ValueError(f"lift {name!r}: rewrite_scale={rewrite_scale} scales the rewrite's change added to an "
                             "adapter that reads the user's prompt; with reads='rewrite' leave it at 1.")
        if adapter is None:
            if path is None or not (Path(path) / "config.json").is_file():
                raise ValueError(f"lift {name!r}: {str(path)!r} holds no adapter (config.json); pass `--lift {name}=PATH` "
                                 "with the output of `promptlift train sur-adapter`.")
            adapter = load_hub_mixin(SURAdapter, Path(path)).eval().requires_grad_(False)
            if adapter.llm_at_inference:
                from .llm import LLMFeatures

                spec = json.loads((Path(path) / "teacher.json").read_text())
                teacher = LLMFeatures(spec["model"], spec["layer"], max_length=spec.get("max_tokens", 128))
        super().__init__(name, Path(path) if path is not None else None)
        self.adapter, self.apply_to_unconditional, self.reads = adapter, apply_to_unconditional, reads
        self.rewrite_scale = float(rewrite_scale)
        if gate == "default":
            gate = defaults.get("gate", LEARNT if adapter.gate else None)
        self.gate = parse_gate(gate, name)
        if self.gate == LEARNT and not adapter.gate:
            raise ValueError(f"lift {name!r}: gate=learnt needs an adapter trained with a gate (`gate_columns`); this one "
                             "has none: give LOW:HIGH or none.")
        self.last_gates: torch.Tensor | None = None  # the weight each prompt of the last call got
        self.teacher = teacher if adapter.llm_at_inference else None

    @torch.no_grad()
    def _adapt(self, pipe, x: torch.Tensor, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(adapted embeddings (B, L, D), padding mask (B, L)) of `prompts`, whose embeddings are `x`."""
        mask = padding_mask(pipe.tokenizer, prompts, x.shape[1]).to(x.device)
        own = self._dtype
        llm = llm_mask = None
        if self.adapter.llm_tokens:
            llm, llm_mask = self.teacher.token_states(prompts)
            llm, llm_mask = llm.to(x.device, own), llm_mask.to(x.device)
        elif self.teacher is not None:
            llm = self.teacher(prompts).to(x.device, own)
        return self.adapter(x.to(own), mask, llm, llm_mask)[0].to(x.dtype), mask

    @property
    def _dtype(self) -> torch.dtype:
        """The adapter computes in its own dtype (a trainer's fp32 adapter is never cast to a half-precision pipeline's)."""
        return next(self.adapter.parameters()).dtype

    def _adapt_pooled(self, pooled: torch.Tensor, adapted: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.adapter.adapt_pooled(pooled.to(self._dtype), adapted.to(self._dtype), mask).to(pooled.dtype)

    def edit_prompt_embeds(self, pipe, embeds: PromptEmbeds, prompts: list[str]) -> PromptEmbeds:
        """Adapt the base model's embedding of the user's prompt (`reads="user"`: the words the user wrote, before
        any rewrite) or of the rewrite (`reads="rewrite"`), and keep what the other lifts changed (a tuned encoder's
        `tuned - base`; with "user", a refiner's appended phrases): the result is `adapted(base(read prompt)) + edits`."""
        source = embeds.user_prompts or prompts if self.reads == "user" else prompts
        base = embeds.user_base if self.reads == "user" else embeds.base
        edits = embeds.edits(base)  # the other lifts' changes, a swapped encoder's and a rewrite's included
        if self.reads == "user" and self.rewrite_scale != 1.0 and embeds.user_prompts is not None:
            rewrite = embeds.base.edits(base)  # base(rewrite) - base(user's)
            edits = {name: plus_edits(edit, None if rewrite.get(name) is None else (self.rewrite_scale - 1) * rewrite[name])
                     for name, edit in edits.items()}
        x = base.prompt_embeds
        self.adapter.to(device=x.device)
        adapted = {}
        adapted["prompt_embeds"], mask = self._adapt(pipe, x, source)
        with torch.no_grad():
            if base.pooled_prompt_embeds is not None:
                adapted["pooled_prompt_embeds"] = self._adapt_pooled(base.pooled_prompt_embeds, adapted["prompt_embeds"], mask)
            weight = None  # each prompt's share of the adapter's change
            if self.gate == LEARNT:
                weight = self.adapter.gate_logit(x.to(self._dtype), mask).sigmoid().to(x.dtype)
            elif self.gate is not None:
                low, high = self.gate
                weight = ((relative_change(adapted["prompt_embeds"], x, mask) - low) / (high - low)).clamp(0, 1)
            if weight is not None:
                self.last_gates = weight.cpu()
            if self.weight != 1:  # the lift's weight (`promptlift.set_lifts`) scales the change, the gate's too
                weight = self.weight * (x.new_ones(x.shape[0]) if weight is None else weight)
            if weight is not None:
                for key in ("prompt_embeds", "pooled_prompt_embeds"):  # the user's prompt's; not the negative's
                    if key not in adapted:
                        continue
                    tensor, original = adapted[key], getattr(base, key)
                    adapted[key] = original + weight.view(-1, *[1] * (tensor.dim() - 1)).to(tensor) * (tensor - original)
            if self.apply_to_unconditional and base.negative_prompt_embeds is not None:
                adapted["negative_prompt_embeds"], n_mask = self._adapt(pipe, base.negative_prompt_embeds, [""] * len(source))
                if base.negative_pooled_prompt_embeds is not None:
                    adapted["negative_pooled_prompt_embeds"] = self._adapt_pooled(
                        base.negative_pooled_prompt_embeds, adapted["negative_prompt_embeds"], n_mask)
        for name, tensor in adapted.items():
            setattr(embeds, name, plus_edits(tensor, edits.get(name)))
        return embeds

    def set_weight(self, weight: float) -> None:
        """The lift's weight scales the adapter's change of the embedding (times the gate's weight)."""
        self.weight = float(weight)

    def describe(self) -> dict:
        return {**super().describe(), "apply_to_unconditional": self.apply_to_unconditional, "reads": self.reads,
                "rewrite_scale": self.rewrite_scale, "gate": self.gate if self.gate in (None, LEARNT) else "%g:%g" % self.gate,
                "llm_at_inference": self.adapter.llm_at_inference, "llm_tokens": self.adapter.llm_tokens}


def sur_adapter_lift(name: str, path: Path | None, apply_to_unconditional: bool = False,
                     reads: str = "default", rewrite_scale: float = 1.0, gate: str = "default") -> SURAdapterLift:
    """The `sur-adapter` lift (`--lift sur-adapter[=PATH]`)."""
    return SURAdapterLift(name, path, apply_to_unconditional, reads=reads, rewrite_scale=rewrite_scale, gate=gate)
