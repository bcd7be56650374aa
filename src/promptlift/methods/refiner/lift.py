"""The refiner's inference strategies (UF-FGTG, section 3.4) and its lift.

(a) iterative: each round offers `n` candidates (one per mode of the adaptive feature extraction), each extending
    the fine prompt so far by `new_tokens` tokens sampled with top-p 0.95 and top-k 50; the user (or a reward on
    quick previews) picks one and the next round extends it;
(b) one-shot: up to 20 or 50 new tokens at once;
(c) plug-and-play: the adapted coarse features used directly as `prompt_embeds` (no text is written).
Every refined prompt fits the pipeline's text encoder: generation stops at its token budget. A refiner trained to
extend (`extend_coarse`) keeps the user's prompt as it is and writes after it: "two red boats at sunset, warm
evening sky, soft lighting, ...".
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from ...pipeline import Lift, PromptEmbeds, join_prompt
from .budget import budget_left, fit_budget
from .features import TextFeatures
from .lm import LM_CONFIG_FILE, LMRefiner
from .model import PromptRefiner

__all__ = ["Refiner", "RefinerLift"]

_COMMA = re.compile(r"\s+,")  # "soft lighting , sharp focus" (a BPE tokenizer's decoding) -> "soft lighting, sharp focus"


class Refiner:
    """A trained `PromptRefiner` with the text features it reads and the pipeline whose token budget it keeps."""

    def __init__(self, model: PromptRefiner, features: TextFeatures, pipe=None, extend: bool = False):
        """`extend`: the refiner was trained to write after the user's prompt (`extend_coarse`), not to rewrite it."""
        self.model, self.features, self.pipe, self.extend = model.eval(), features, pipe, extend
        self.budget_tokenizer = pipe.tokenizer if pipe is not None else features.tokenizer

    @classmethod
    def load(cls, path: str | Path, pipe=None) -> "Refiner | LMRefiner":
        """From a `promptlift train refiner` folder; `pipe` is needed when it reads the pipeline's encoder. A folder of
        an LM refiner (`decoder: lm`) gives an `LMRefiner`, which refines through the same calls."""
        if (Path(path) / LM_CONFIG_FILE).is_file():
            return LMRefiner.load(path, pipe)
        model = PromptRefiner.from_pretrained(path).eval().requires_grad_(False)  # inference only
        encoder = model.extra.get("text_encoder", "pipeline")
        if encoder == "pipeline" and pipe is None:
            raise ValueError(f"refiner {str(path)!r} reads the pipeline's text encoder; load it with a pipeline "
                             "(pass `--model`).")
        features = TextFeatures(pipe, encoder, model.extra.get("max_coarse_tokens", 32))
        return cls(model, features, pipe, extend=model.extra.get("extend_coarse", False))

    def _adapted(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        x, mask = self.features(prompts)
        self.model.to(x.device)
        with torch.no_grad():
            return self.model.adapt(x, mask), mask

    def budget_left(self, text: str) -> int:
        """Tokens still free in the pipeline's text encoder after `text` (start and end tokens counted)."""
        return budget_left(self.budget_tokenizer, text)

    def _split(self, prompt: str, prefix: str) -> tuple[str, str]:
        """(text kept as it is, the decoder's text so far) of the refined prompt `prefix` of `prompt`."""
        if not self.extend:
            return "", prefix
        head = join_prompt(prompt, "")  # as the refined prompts start
        if head and prefix.startswith(head):
            return head, prefix[len(head):]
        return prefix or prompt, ""  # a prefix the user rewrote is kept whole, and extended

    def _write(self, prompts: list[str], prefixes: list[str], mode: int, max_new_tokens: int, sample: bool,
               seeds: list[int], top_p: float = 0.95, top_k: int = 50, whole_phrases: bool = False) -> list[str]:
        """Each `prefixes[i]` (the refined prompt of `prompts[i]` so far; "" at the start) extended by up to
        `max_new_tokens` decoder tokens. Greedy rows that start alike are decoded as one batch; a sampled row alone,
        so that it follows its own seed. `whole_phrases`: a phrase cut by the length limit is dropped (the text ends
        at its last comma)."""
        out, rows = list(prefixes), []
        for i, (prompt, prefix) in enumerate(zip(prompts, prefixes)):
            kept, tail = self._split(prompt, prefix)
            tail = tail.strip().lstrip(",").strip()
            budget = min(max_new_tokens, self.budget_left(join_prompt(kept, tail)) - int(bool(kept and not tail)))
            if budget <= 0:
                out[i] = prefix or kept
                continue
            ids = self.features.tokenizer(tail, add_special_tokens=False).input_ids if tail else []
            rows.append((i, kept, ids, self.model.writable([self.model.config["bos_token_id"], *ids]), budget))
        groups: dict[tuple, list] = {}
        for row in rows:
            groups.setdefault((row[0],) if sample else (len(row[3]),), []).append(row)
        kwargs = dict(do_sample=True, top_p=top_p, top_k=top_k) if sample else dict(do_sample=False)
        for group in groups.values():
            adapted, mask = self._adapted([prompts[row[0]] for row in group])
            start = torch.tensor([row[3] for row in group], device=adapted.device)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seeds[group[0][0]])
                written = self.model.generate(adapted, mask, mode % self.model.num_modes, start,
                                              max_new_tokens=max(row[4] for row in group), **kwargs)
            for (i, kept, ids, _, budget), sequence in zip(group, written):
                new = self.model.to_tokenizer_ids(sequence[start.shape[1]:][:budget]).tolist()  # the prefix keeps its tokens
                out[i] = self._text(kept, ids, new, whole_phrases)
        return out

    def _text(self, kept: str, ids: list[int], new: list[int], whole_phrases: bool) -> str:
        """The refined prompt: `kept` joined with the decoded tokens `ids + new`, within the token budget."""
        text = _COMMA.sub(",", self.features.tokenizer.decode(ids + new, skip_special_tokens=True)).strip()
        if whole_phrases and self.model.config["eos_token_id"] not in new:  # stopped by the length limit
            head = _COMMA.sub(",", self.features.tokenizer.decode(ids, skip_special_tokens=True)).strip()
            cut = text.rfind(",")
            text = text[:cut].strip() if cut >= len(head) else head
        return fit_budget(self.budget_tokenizer, join_prompt(kept, text), kept)  # another tokenizer may count more

    def candidates(self, prompt: str, prefix: str = "", n: int = 3, new_tokens: int = 6, seed: int = 0,
                   top_p: float = 0.95, top_k: int = 50) -> list[str]:
        """(a) One round: `n` different continuations of `prefix` (the fine prompt so far), one per mode, sampled; a
        candidate equal to an earlier one is drawn again with the next seed (up to 3n draws, so fewer than `n` come
        back only when the refiner knows fewer continuations)."""
        found: list[str] = []
        for draw in range(3 * n):
            text, = self._write([prompt], [prefix], draw % self.model.num_modes, new_tokens, True, [seed + draw], top_p, top_k)
            if text not in found:
                found.append(text)
            if len(found) == n:
                break
        return found

    def one_shot(self, prompts: list[str], max_new_tokens: int = 20, mode: int = 0, sample: bool = False,
                 seed: int = 0) -> list[str]:
        """(b) A whole refined prompt per input, up to `max_new_tokens` tokens (greedy, all prompts decoded as one
        batch, unless `sample`: then prompt i follows seed `seed + i`); a phrase the limit cuts is left out."""
        return self._write(prompts, [""] * len(prompts), mode, max_new_tokens, sample,
                           [seed + i for i in range(len(prompts))], whole_phrases=True)

    def embeds(self, prompts: list[str]) -> torch.Tensor:
        """(c) The adapted coarse features, as `prompt_embeds` (the pipeline's encoder only)."""
        if self.features.model is not None:
            raise ValueError("plug-and-play needs a refiner trained on the pipeline's own text encoder.")
        return self._adapted(prompts)[0]


class RefinerLift(Lift):
    """`--lift refiner[=PATH]`: rewrite prompts one-shot (default) or condition on the adapted features.

        >>> import promptlift
        >>> pipe = promptlift.load_pipeline()
        >>> promptlift.load_lift(pipe, promptlift.bundle_lift("refiner"), max_new_tokens=8)
        >>> image = pipe("a red ball", num_inference_steps=2).images[0]   # generated from the refined prompt
    """

    def __init__(self, name: str, path: Path | None, strategy: str = "one-shot", max_new_tokens: int = 20,
                 mode: int = 0, sample: bool = False, seed: int = 0, *, refiner: Refiner | None = None):
        if strategy not in ("one-shot", "embeds"):
            raise ValueError(f"refiner strategy {strategy!r} must be 'one-shot' or 'embeds' (the iterative one is "
                             "`promptlift refine`).")
        if refiner is None and (path is None or not Path(path).is_dir()):
            raise ValueError(f"lift {name!r} needs a refiner folder: pass `--lift {name}=PATH` (a `promptlift train "
                             "refiner` output).")
        super().__init__(name, Path(path) if path is not None else None)
        self.strategy, self.max_new_tokens, self.mode = strategy, int(max_new_tokens), int(mode)
        self.sample, self.seed, self.refiner = bool(sample), int(seed), refiner
        self.last_rewrites: list[tuple[str, str]] = []

    def apply(self, pipe) -> None:
        if self.refiner is None:
            self.refiner = Refiner.load(self.path, pipe)

    @property
    def rewrites_prompts(self) -> bool:
        return self.strategy == "one-shot"

    def rewrite_prompts(self, prompts: list[str]) -> list[str]:
        if self.strategy != "one-shot":
            return prompts
        refined = self.refiner.one_shot(prompts, self.max_new_tokens, self.mode, self.sample, self.seed)
        refined = [r or p for r, p in zip(refined, prompts)]  # an empty rewrite keeps the user's prompt
        self.last_rewrites = list(zip(prompts, refined))
        return refined

    def edit_prompt_embeds(self, pipe, embeds: PromptEmbeds, prompts: list[str]) -> PromptEmbeds:
        if self.strategy == "embeds":
            embeds.prompt_embeds = self.refiner.embeds(prompts).to(embeds.prompt_embeds)
        return embeds

    def describe(self) -> dict:
        return {**super().describe(), "strategy": self.strategy, "max_new_tokens": self.max_new_tokens,
                "mode": self.mode, "sample": self.sample, "seed": self.seed}


def refiner_lift(name: str, path: Path | None, strategy: str = "one-shot", max_new_tokens: int = 20, mode: int = 0,
                 sample: bool = False, seed: int = 0) -> RefinerLift:
    """The `refiner` lift (`--lift refiner[=PATH]`)."""
    return RefinerLift(name, path, strategy, max_new_tokens, mode, sample, seed)
