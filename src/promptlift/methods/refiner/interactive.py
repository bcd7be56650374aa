"""`promptlift refine`: the refine-and-pick loop of UF-FGTG (iterative) or a one-shot rewrite.

Each round shows `num_candidates` continuations of the fine prompt so far; the pick is the user's (`pick: ask`),
the first candidate (`first`), or the candidate whose quick preview (few denoising steps, fixed seed) scores
highest under a reward (`reward`). The web app drives the same `refine_round` function.
"""

from __future__ import annotations

from typing import Callable

import torch
from .config import RefineConfig

__all__ = ["RefineConfig", "pick_by_reward", "refine", "refine_rounds"]


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

    def choose(round_: int, candidates: list[str]) -> int:
        show(round_, candidates)
        if cfg.pick == "ask" and ask is not None:
            return ask(candidates)
        if cfg.pick == "reward":
            return pick_by_reward(pipe, candidates, cfg.prompt, reward, cfg.preview_steps, cfg.seed)
        return 0

    return refine_rounds(refiner, cfg.prompt, cfg.rounds, cfg.num_candidates, cfg.new_tokens, cfg.seed, choose)


def refine_rounds(refiner, prompt: str, rounds: int, num_candidates: int, new_tokens: int, seed: int,
                  choose: Callable[[int, list[str]], int]) -> str:
    """UF-FGTG's iterative strategy: each round, `num_candidates` continuations of the refined prompt so far (round r
    sampled from seed `seed + 100 r`), of which `choose(round, candidates)` keeps one; stops early when the text
    encoder's token budget is spent. Returns the refined prompt (`promptlift refine` and the ComfyUI node alike)."""
    prefix = ""
    for r in range(1, rounds + 1):
        if refiner.budget_left(prefix) <= 0:  # the text encoder's token budget is spent
            break
        candidates = refiner.candidates(prompt, prefix, num_candidates, new_tokens, seed=seed + 100 * r)
        prefix = candidates[choose(r, candidates)]
    return prefix
