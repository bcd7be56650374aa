"""`promptlift compare RUN_A RUN_B --judge REWARD`: pairwise win rate over shared (prompt, seed) pairs."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from ..stats import win_rate
from ..files import atomic_write_json
from ..images import images_to_tensor
from .report import write_compare_report
from .run import read_scores
from .config import CompareConfig

__all__ = ["CompareConfig", "compare"]


def _judge_scores(run: Path, rows: list[dict], judge: str) -> dict:
    """{(prompt, seed): score}, from scores.jsonl, or by scoring the run's images with the judge now."""
    if all(judge in r["scores"] for r in rows):
        return {(r["prompt"], r["seed"]): r["scores"][judge] for r in rows}
    from ..rewards import load_reward

    reward = load_reward(judge)
    out = {}
    for start in range(0, len(rows), 32):
        part = rows[start : start + 32]
        with torch.no_grad():
            values = reward(images_to_tensor([Image.open(run / r["image"]) for r in part]), [r["prompt"] for r in part])
        out.update({(r["prompt"], r["seed"]): float(v) for r, v in zip(part, values)})
    return out


def compare(cfg: CompareConfig) -> dict:
    """Write compare.json ({judge, n, win_rate, ci95, ties, by_category}) and compare.html; return the result."""
    run_a, run_b = Path(cfg.run_a), Path(cfg.run_b)
    rows_a, rows_b = read_scores(run_a), read_scores(run_b)
    by_key_b = {(r["prompt"], r["seed"]): r for r in rows_b}
    shared = [r for r in rows_a if (r["prompt"], r["seed"]) in by_key_b]
    if not shared:
        raise ValueError(f"runs {str(run_a)!r} and {str(run_b)!r} share no (prompt, seed) pair; evaluate both on the "
                         "same prompt set and seeds.")
    sa, sb = _judge_scores(run_a, shared, cfg.judge), _judge_scores(run_b, [by_key_b[(r["prompt"], r["seed"])] for r in shared], cfg.judge)
    pairs = [{"prompt": r["prompt"], "seed": r["seed"], "category": r.get("category"),
              "a": sa[(r["prompt"], r["seed"])], "b": sb[(r["prompt"], r["seed"])],
              "image_a": r["image"], "image_b": by_key_b[(r["prompt"], r["seed"])]["image"]} for r in shared]
    result = {"judge": cfg.judge, **win_rate([p["a"] for p in pairs], [p["b"] for p in pairs],
                                             [p["prompt"] for p in pairs], cfg.tie_tolerance)}
    categories = sorted({p["category"] for p in pairs if p["category"]})
    if len(categories) > 1:
        result["by_category"] = {c: win_rate([p["a"] for p in pairs if p["category"] == c],
                                             [p["b"] for p in pairs if p["category"] == c],
                                             [p["prompt"] for p in pairs if p["category"] == c], cfg.tie_tolerance)
                                 for c in categories}
    out = Path(cfg.output_dir) if cfg.output_dir else run_a / f"compare-vs-{run_b.name}"
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "compare.json", {**result, "run_a": str(run_a), "run_b": str(run_b)})
    write_compare_report(out / "compare.html", result, pairs, run_a, run_b)
    return result
