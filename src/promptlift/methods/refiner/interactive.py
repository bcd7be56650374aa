"""`promptlift refine`: the refine-and-pick loop of UF-FGTG (iterative) or a one-shot rewrite.

Each round shows `num_candidates` continuations of the fine prompt so far; the pick is the user's (`pick: ask`),
the first candidate (`first`), or the candidate whose quick preview (few denoising steps, fixed seed) scores
highest under a reward (`reward`). The web app drives the same `refine_round` function.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

import torch

__all__ = ["RefineConfig", "pick_by_reward", "refine"]


@dataclass
class RefineConfig:
    """Rewrite a plain prompt into model-preferred prompts with a trained refiner."""

    prompt: str = field(default="", metadata={"help": "The plain prompt to refine."})
    refiner: Path | None = field(default=None, metadata={
        "help": "Refiner folder (`promptlift train refiner` output); default: the bundle's, on the embedded model only."})
    model: str | None = field(default=None, metadata={"help": "Pipeline whose text encoder and token budget the refiner uses; default: the embedded model."})
    strategy: Literal["iterative", "one-shot"] = field(default="iterative", metadata={"help": "Rounds of candidates, or one rewrite."})
    rounds: int = field(default=3, metadata={"help": "Iterative rounds."})
    num_candidates: int = field(default=3, metadata={"help": "Candidates per round."})
    new_tokens: int = field(default=6, metadata={"help": "Tokens each candidate adds per round."})
    max_new_tokens: int = field(default=20, metadata={"help": "One-shot length (20 or 50 in the paper)."})
    pick: Literal["ask", "first", "reward"] = field(default="ask", metadata={"help": "Who picks a candidate each round (ask: you, on the terminal)."})
    reward: str | None = field(default=None, metadata={
        "help": "Reward scoring the quick previews (pick: reward); default: world-aesthetic-reward on the embedded "
                "model, else laion-aesthetic."})
    reward_option: list[str] = field(default_factory=list, metadata={"help": "REWARD.KEY=VALUE option of the reward; repeatable."})
    preview_steps: int = field(default=10, metadata={"help": "Denoising steps of a quick preview."})
    seed: int = field(default=0, metadata={"help": "Seed of sampling and previews."})

    def __post_init__(self):
        from ...profiles import is_embedded, judge_defaults

        if not self.prompt.strip():
            raise ValueError("no prompt given; pass the PROMPT to refine.")
        if self.refiner is None and not is_embedded(self.model):
            raise ValueError(f"no `refiner` given, and the bundle's is the embedded model's, not {self.model!r}'s; train "
                             f"it: promptlift train refiner --model {self.model}, then pass --refiner OUTPUT_DIR/best.")
        self.reward = self.reward or judge_defaults(self.model).aesthetic
        for name in ("rounds", "num_candidates", "new_tokens", "max_new_tokens", "preview_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be >= 1, got {getattr(self, name)}.")


@torch.no_grad()
def pick_by_reward(pipe, candidates: list[str], prompt: str, reward, steps: int, seed: int) -> int:
    """Index of the candidate whose preview (same seed for all) scores highest; scored against the user's prompt."""
    from ...pipeline import seeded_images

    images = seeded_images(pipe, candidates, [seed] * len(candidates), num_inference_steps=steps)
    return int(reward(images, [prompt] * len(candidates)).argmax())


def refine(cfg: RefineConfig, show: Callable[[int, list[str]], None] = lambda i, c: None,
           ask: Callable[[list[str]], int] | None = None) -> str:
    """Run the loop; returns the final refined prompt. `show(round, candidates)` displays a round; `ask` picks."""
    from ...pipeline import load_pipeline
    from ..registry import METHODS
    from .lift import Refiner

    path = cfg.refiner or METHODS["refiner"].bundle_weights
    if path is None:
        raise ValueError("no `refiner` given and the bundle has none; pass `--refiner` with a `promptlift train refiner` output.")
    pipe = load_pipeline(cfg.model)
    refiner = Refiner.load(path, pipe)
    if cfg.strategy == "one-shot":
        result = refiner.one_shot([cfg.prompt], cfg.max_new_tokens, seed=cfg.seed)[0]
        show(1, [result])
        return result
    reward = None
    if cfg.pick == "reward":
        from ...rewards import load_reward, parse_reward_options

        reward = load_reward(cfg.reward, **parse_reward_options(cfg.reward_option).get(cfg.reward, {}))
    prefix = ""
    for r in range(1, cfg.rounds + 1):
        if refiner.budget_left(prefix) <= 0:  # the text encoder's token budget is spent
            break
        candidates = refiner.candidates(cfg.prompt, prefix, cfg.num_candidates, cfg.new_tokens, seed=cfg.seed + 100 * r)
        show(r, candidates)
        if cfg.pick == "ask" and ask is not None:
            choice = ask(candidates)
        elif cfg.pick == "reward":
            choice = pick_by_reward(pipe, candidates, cfg.prompt, reward, cfg.preview_steps, cfg.seed)
        else:
            choice = 0
        prefix = candidates[choice]
    return prefix
