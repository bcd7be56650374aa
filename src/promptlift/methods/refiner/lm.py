"""The refiner on a pretrained causal language model: every prompt expander people use (Promptist, MagicPrompt,
Fooocus' expansion, TIPO) is one, fine-tuned.

The design, and why: the LM reads the user's prompt as text, in its own chat template when it has one (a system line,
the `instruction`, then the prompt as the user's turn) or in `template` when it has none, and writes the refined
prompt as its answer. Reading text keeps what the LM already knows of words (a from-scratch decoder over the targets'
tokens cannot write a colour it never saw as a target); the paper's encoder + domain adapter + modes stay with the
T5 decoder (`decoder: t5`). The three candidates of a round are three samples (each its own seed) continuing the
prompt so far; one-shot refinement is greedy. The LM is fine-tuned fully or with a LoRA on every linear layer, the
loss on the answer's tokens only; with no training at all (`zero_shot`) an instruction LM refines from its
`instruction` alone.

A refiner folder holds `lm_refiner.json` (the base LM, how it is read, the template) and, when trained, the LoRA
(peft's adapter_model.safetensors) or the whole LM (`save_pretrained`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from ...pipeline import join_prompt
from ...files import atomic_write_json
from ..language_models import load_causal_lm
from .budget import budget_left, fit_budget
from .config import LM_INSTRUCTION, LM_TEMPLATE

__all__ = ["DEFAULT_INSTRUCTION", "DEFAULT_TEMPLATE", "LM_CONFIG_FILE", "LMPrompts", "LMRefiner"]

LM_CONFIG_FILE = "lm_refiner.json"
DEFAULT_INSTRUCTION, DEFAULT_TEMPLATE = LM_INSTRUCTION, LM_TEMPLATE


class LMPrompts:
    """The LM's input for a user's prompt, and its training rows (input + answer, the loss on the answer only)."""

    def __init__(self, tokenizer, instruction: str = DEFAULT_INSTRUCTION, template: str = DEFAULT_TEMPLATE):
        if "{prompt}" not in template:
            raise ValueError(f"the refiner's `template` {template!r} has no {{prompt}}; write where the prompt goes.")
        self.tokenizer, self.instruction, self.template = tokenizer, instruction, template

    def context(self, prompt: str) -> str:
        """The text the LM continues with the refined prompt."""
        if self.tokenizer.chat_template:
            return self.tokenizer.apply_chat_template(
                [{"role": "system", "content": self.instruction}, {"role": "user", "content": prompt}],
                add_generation_prompt=True, tokenize=False)
        return self.template.format(instruction=self.instruction, prompt=prompt) + " "

    def training_row(self, prompt: str, answer: str, max_length: int = 256) -> tuple[list[int], list[int]]:
        """(input ids, labels): the context then the answer and the end token; labels -100 on the context."""
        context = self.tokenizer(self.context(prompt), add_special_tokens=False).input_ids
        end = [self.tokenizer.eos_token_id] if self.tokenizer.eos_token_id is not None else []
        target = self.tokenizer(answer, add_special_tokens=False).input_ids + end
        ids = (context + target)[:max_length]
        return ids, ([-100] * len(context) + target)[:max_length]


class LMRefiner:
    """A causal LM that refines prompts, with the interface of the T5 `Refiner` (`candidates`, `one_shot`): every
    refined prompt fits the pipeline's text encoder (cut at its token budget)."""

    def __init__(self, model, tokenizer, pipe=None, *, instruction: str = DEFAULT_INSTRUCTION,
                 template: str = DEFAULT_TEMPLATE, extend: bool = False):
        """`extend`: the LM was trained to write what follows the user's prompt, which is kept as it is."""
        self.model, self.tokenizer, self.pipe, self.extend = model.eval(), tokenizer, pipe, extend
        self.prompts = LMPrompts(tokenizer, instruction, template)
        self.budget_tokenizer = pipe.tokenizer if pipe is not None else None

    @classmethod
    def load(cls, path: str | Path, pipe=None) -> LMRefiner:
        """From a refiner folder with lm_refiner.json (a trained LM refiner, or a zero-shot one)."""
        path = Path(path)
        spec = json.loads((path / LM_CONFIG_FILE).read_text())
        weights = spec.get("weights", "none")
        if weights == "full":
            model, tokenizer = load_causal_lm(str(path))
        else:
            model, tokenizer = load_causal_lm(spec["lm"])
            if weights == "lora":
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, str(path)).merge_and_unload()  # one matmul a layer
        return cls(model.requires_grad_(False), tokenizer, pipe,
                   instruction=spec.get("instruction", DEFAULT_INSTRUCTION), template=spec.get("template", DEFAULT_TEMPLATE),
                   extend=spec.get("extend_coarse", False))

    @staticmethod
    def write_config(folder: Path, lm: str, weights: str, instruction: str, template: str, extend: bool) -> None:
        """lm_refiner.json: the base LM, the weights the folder holds ("lora", "full" or "none"), how it is read."""
        atomic_write_json(Path(folder) / LM_CONFIG_FILE, {"lm": lm, "weights": weights, "instruction": instruction,
                                                         "template": template, "extend_coarse": extend})

    def budget_left(self, text: str) -> int:
        """Tokens still free in the pipeline's text encoder after `text` (a large number without a pipeline)."""
        return 1 << 30 if self.budget_tokenizer is None else budget_left(self.budget_tokenizer, text)

    def _fit(self, text: str, kept: str = "") -> str:
        """`text` within the pipeline's token budget (no cut without a pipeline)."""
        return text if self.budget_tokenizer is None else fit_budget(self.budget_tokenizer, text, kept)

    def _answer(self, text: str) -> str:
        """The refined prompt in the LM's answer: its first line, without quotes or a label it may repeat."""
        text = text.strip().split("\n", 1)[0].strip().strip("\"'").strip()
        return re.sub(r"^(rewrite|prompt|refined prompt)\s*:\s*", "", text, flags=re.I)

    @torch.no_grad()
    def _continue(self, prompts: list[str], prefixes: list[str], max_new_tokens: int, sample: bool, seeds: list[int],
                  top_p: float = 0.95, top_k: int = 50) -> list[str]:
        """Each prompt's answer so far (`prefixes[i]`) continued by up to `max_new_tokens` tokens. Greedy rows are
        decoded as one batch (left-padded), a sampled row alone, following its own seed."""
        device = next(self.model.parameters()).device
        texts = [self.prompts.context(p) + prefix for p, prefix in zip(prompts, prefixes)]
        groups = [[i] for i in range(len(texts))] if sample else [list(range(len(texts)))]
        out = [""] * len(texts)
        side, self.tokenizer.padding_side = self.tokenizer.padding_side, "left"
        try:
            for group in groups:
                batch = self.tokenizer([texts[i] for i in group], return_tensors="pt", padding=True,
                                       add_special_tokens=False).to(device)
                kwargs = dict(do_sample=True, top_p=top_p, top_k=top_k) if sample else dict(do_sample=False)
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(seeds[group[0]])
                    written = self.model.generate(**batch, max_new_tokens=max_new_tokens,
                                                  pad_token_id=self.tokenizer.pad_token_id, **kwargs)
                for i, row in zip(group, written[:, batch.input_ids.shape[1]:]):
                    out[i] = self.tokenizer.decode(row, skip_special_tokens=True)
        finally:
            self.tokenizer.padding_side = side
        return out

    def _refined(self, prompt: str, answer: str) -> str:
        answer = self._answer(answer)
        if self.extend:
            return self._fit(join_prompt(prompt, answer), prompt)
        return self._fit(answer) or prompt  # an empty rewrite keeps the user's prompt

    def one_shot(self, prompts: list[str], max_new_tokens: int = 20, mode: int = 0, sample: bool = False,
                 seed: int = 0) -> list[str]:
        """A whole refined prompt per input, up to `max_new_tokens` tokens (greedy, all prompts as one batch, unless
        `sample`: then prompt i follows seed `seed + i`; `mode` is the T5 refiner's and changes nothing here)."""
        answers = self._continue(list(prompts), [""] * len(prompts), max_new_tokens, sample,
                                 [seed + i for i in range(len(prompts))])
        return [self._refined(p, a) for p, a in zip(prompts, answers)]

    def candidates(self, prompt: str, prefix: str = "", n: int = 3, new_tokens: int = 6, seed: int = 0,
                   top_p: float = 0.95, top_k: int = 50) -> list[str]:
        """One round: `n` different continuations of `prefix` (the refined prompt so far), each sampled with its own
        seed; a candidate equal to an earlier one is drawn again (up to 3n draws)."""
        kept = join_prompt(prompt, "") if self.extend else ""
        so_far = prefix[len(kept):].lstrip(" ,") if self.extend and prefix.startswith(kept) else prefix
        found: list[str] = []
        for draw in range(3 * n):
            more, = self._continue([prompt], [so_far], new_tokens, True, [seed + draw], top_p, top_k)
            text = self._answer(so_far + more) if more.strip() else so_far
            text = self._fit(join_prompt(kept, text) if self.extend else text, kept) or prompt
            if text not in found:
                found.append(text)
            if len(found) == n:
                break
        return found

    def embeds(self, prompts: list[str]) -> torch.Tensor:
        raise ValueError("an LM refiner writes text; it has no adapted features to use as `prompt_embeds` (the "
                         "'embeds' strategy is the T5 refiner's).")
