"""The factorial ablation of the lifted stack: all 16 on/off combinations of the four lifts, on the same prompts and
seeds, judged by the attribute judge and aesthetic predictor B (`world-aesthetic`, evaluation only). The whole stack
runs as `--lifted` does (with LIFTED_OPTIONS); the other cells with each lift's own defaults.

    .venv/bin/python scripts/lift_factorial.py [--sets narrative-val literal] [--num_prompts 64] [--seeds 2]
        [--full_prompts 200] [--output_dir runs/lift-factorial] [--only_cells base stack]

Every cell is a `promptlift eval` run in OUTPUT_DIR/<set>/<cell> (a finished run is read back, so the work splits
over processes with `--only_cells`); the base model and the whole stack run on `--full_prompts` prompts, the other
14 cells on the first `--num_prompts` of them (the world's prompt sets give scene i the same in every run). The
lifts are the bundle's (`LIFTED_STACK`, in the order they compose). Per set it prints:
- each cell's semantic accuracy, aesthetic and win rate vs base on the shared prompts (`evaluation.systems`);
- each lift's marginal effect: over the shared (prompt, seed) pairs, the mean over the 8 cells with the lift minus
  the mean over the 8 without, of the win over base (1 win, 1/2 tie, 0 loss) and of each attribute being right,
  with a bootstrap 95 % interval over prompts.
Writes OUTPUT_DIR/lift_factorial.json.
"""

import argparse
import itertools
import json
from pathlib import Path

import numpy as np
import torch

from promptlift.config import load_config
from promptlift.evaluation.run import WORLD_ATTRIBUTES, EvalConfig, evaluate, read_scores
from promptlift.evaluation.systems import format_system_table, system_table
from promptlift.methods import LIFTED_STACK
from promptlift.stats import bootstrap_mean

JUDGE = "world-aesthetic"
METRICS = ("win", *WORLD_ATTRIBUTES, "all")


def cell_name(lifts: tuple[str, ...]) -> str:
    return "+".join(lifts) if lifts else "base"


def cells() -> list[tuple[str, ...]]:
    """All 16 subsets of the stack, each in the stack's order; base first, the whole stack last."""
    subsets = [tuple(n for n, on in zip(LIFTED_STACK, mask) if on) for mask in itertools.product((0, 1), repeat=4)]
    return sorted(subsets, key=len)


def per_image(run: Path, base: dict) -> dict[tuple, dict[str, float]]:
    """{(id, seed): {metric: value}} of one cell: win over base and each attribute (and all four) right."""
    out = {}
    for r in read_scores(run):
        key = (r["id"], r["seed"])
        if key not in base:
            continue
        a, b = r["scores"][JUDGE], base[key]["scores"][JUDGE]
        values = {"win": 0.5 if a == b else float(a > b)}
        values.update({k: float(r["semantic"][k]) for k in WORLD_ATTRIBUTES})
        values["all"] = float(all(r["semantic"].values()))
        out[key] = values
    return out


def marginal_effects(images: dict[tuple[str, ...], dict[tuple, dict]]) -> dict[str, dict[str, dict]]:
    """{lift: {metric: bootstrap summary of (mean with the lift - mean without) per (prompt, seed)}}."""
    keys = sorted(set.intersection(*(set(v) for v in images.values())))
    groups = [k[0] for k in keys]
    effects = {}
    for lift in LIFTED_STACK:
        on = [c for c in images if lift in c]
        off = [c for c in images if lift not in c]
        effects[lift] = {}
        for metric in METRICS:
            diff = [np.mean([images[c][k][metric] for c in on]) - np.mean([images[c][k][metric] for c in off]) for k in keys]
            effects[lift][metric] = bootstrap_mean(diff, groups)
    return effects


def format_effects(effects: dict[str, dict[str, dict]]) -> str:
    head = f"{'lift':<16}" + "".join(f"{m:>24}" for m in METRICS)
    lines = [head]
    for lift, row in effects.items():
        cells_ = "".join(f"{100 * s['mean']:>+8.1f} [{100 * s['ci95'][0]:+.1f}, {100 * s['ci95'][1]:+.1f}]".rjust(24)
                         for s in row.values())
        lines.append(f"{lift:<16}{cells_}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="+", default=["narrative-val", "literal"])
    parser.add_argument("--num_prompts", type=int, default=64)
    parser.add_argument("--full_prompts", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--num_threads", type=int, default=2)
    parser.add_argument("--only_cells", nargs="+", help="run only these cells (names as printed, e.g. base, "
                        "sur-adapter+textcraftor, stack) and print nothing")
    parser.add_argument("--output_dir", default="runs/lift-factorial")
    args = parser.parse_args()
    torch.set_num_threads(args.num_threads)
    stack = tuple(LIFTED_STACK)
    result = {}
    for name in args.sets:
        runs = {}
        for lifts in cells():
            cell = cell_name(lifts)
            if args.only_cells and not ({cell, "stack" if lifts == stack else None} & set(args.only_cells)):
                continue
            full = lifts in ((), stack)
            cfg = load_config(EvalConfig, None, {
                "prompts": f"world-{name}", "num_prompts": args.full_prompts if full else args.num_prompts,
                "seeds": args.seeds, "rewards": [JUDGE], "lift": list(lifts), "lifted": lifts == stack,  # its options too
                "batch_size": args.batch_size,
                "output_dir": str(Path(args.output_dir) / name / cell)})
            runs[lifts] = evaluate(cfg)
        if args.only_cells:
            continue
        base = {(r["id"], r["seed"]): r for r in read_scores(runs[()])}
        table = system_table({cell_name(c): p for c, p in runs.items()}, "base", JUDGE, shared=True)
        full = system_table({"base": runs[()], "stack": runs[stack]}, "base", JUDGE)
        effects = marginal_effects({c: per_image(p, base) for c, p in runs.items()})
        result[name] = {"cells": table, "full": full, "marginal_effects": effects}
        print(f"\nworld-{name}: 16 cells on {args.num_prompts} prompts x {args.seeds} seeds\n"
              + format_system_table(table, "base")
              + f"\n\nmarginal effect of each lift (percentage points, 95 % CI)\n{format_effects(effects)}"
              + f"\n\nbase vs stack, {args.full_prompts} prompts x {args.seeds} seeds\n"
              + format_system_table(full, "base"), flush=True)
    if result:
        Path(args.output_dir).mkdir(parents=True, exist_ok=True)
        Path(args.output_dir, "lift_factorial.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
