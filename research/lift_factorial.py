"""The factorial ablation of the lifted stack: all 16 on/off combinations of the four lifts, on the same prompts and
seeds, judged by the attribute judge and aesthetic predictor B (`world-aesthetic`, evaluation only). The whole stack
runs as `--lifted` does (with LIFTED_OPTIONS); the other cells with each lift's own defaults.

    .venv/bin/python research/lift_factorial.py [--sets narrative-val literal] [--num_prompts 64] [--seeds 2]
        [--full_prompts 200] [--output_dir runs/lift-factorial] [--only_cells base stack]
        [--leave_one_out [--leave_out refiner textcraftor]]

Every cell is a `promptlift eval --system` run in OUTPUT_DIR/world-<set>/<cell> (a finished run is read back, so the work splits
over processes with `--only_cells`); the base model and the whole stack run on `--full_prompts` prompts, the other
14 cells on the first `--num_prompts` of them (the world's prompt sets give scene i the same in every run). The
lifts are the bundle's (`LIFTED_STACK`, in the order they compose). Per set it prints:
- each cell's semantic accuracy, aesthetic and win rate vs base on the shared prompts (`evaluation.systems`);
- each lift's marginal effect: over the shared (prompt, seed) pairs, the mean over the 8 cells with the lift minus
  the mean over the 8 without, of the win over base (1 win, 1/2 tie, 0 loss) and of each attribute being right,
  with a bootstrap 95 % interval over prompts.
Writes OUTPUT_DIR/lift_factorial.json (with the run's date, commit, command and machine; `--results FILE` too).
Runs under torchrun as `promptlift eval` does: `OMP_NUM_THREADS=1 .venv/bin/torchrun --nproc_per_node 2
research/lift_factorial.py ... --num_threads 1`.

`--leave_one_out` asks what each lift costs or gives inside the stack as it ships instead: the base model, the whole
stack and the stack without each lift (the others with the stack's options), all on `--full_prompts`; per lift, the
whole stack minus the stack without it, per (prompt, seed), with the same bootstrap. Writes
OUTPUT_DIR/leave_one_out.json.
"""

import argparse
import itertools
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from promptlift.config import load_config
from promptlift.evaluation.run import EvalConfig, read_scores
from promptlift.evaluation.systems import evaluate_systems, format_system_table, system_table
from promptlift.world import ATTRIBUTES
from promptlift.pipeline.stack import LIFTED_OPTIONS, LIFTED_STACK
from promptlift.stats import bootstrap_mean
from promptlift.files import atomic_write_json
from promptlift.devices import distributed_state
from promptlift.runs import run_record

JUDGE = "world-aesthetic"
METRICS = ("win", *ATTRIBUTES, "all")


def cell_name(lifts: tuple[str, ...]) -> str:
    return "+".join(lifts) if lifts else "base"


def cells() -> list[tuple[str, ...]]:
    """All 16 subsets of the stack, each in the stack's order; base first, the whole stack last."""
    subsets = [tuple(n for n, on in zip(LIFTED_STACK, mask) if on) for mask in itertools.product((0, 1), repeat=4)]
    return sorted(subsets, key=len)


def leave_one_out_cells(leave_out: Sequence[str] = LIFTED_STACK) -> list[tuple[str, ...]]:
    """Base, the whole stack, then the stack without each lift of `leave_out` in turn."""
    return [(), tuple(LIFTED_STACK), *(tuple(n for n in LIFTED_STACK if n != out) for out in leave_out)]


def cell_spec(lifts: tuple[str, ...], leave_one_out: bool) -> list[str]:
    """A cell as `--system` items: the whole stack as `--lifted` runs it; a leave-one-out cell with the stack's options
    (LIFTED_OPTIONS) of the lifts it keeps; a factorial cell with each lift's own defaults."""
    if lifts == tuple(LIFTED_STACK):
        return ["lifted"]
    return [*lifts, *(o for o in LIFTED_OPTIONS if o.partition(".")[0] in lifts and leave_one_out)]


def per_image(run: Path, base: dict) -> dict[tuple, dict[str, float]]:
    """{(id, seed): {metric: value}} of one cell: win over base and each attribute (and all four) right."""
    out = {}
    for r in read_scores(run):
        key = (r["id"], r["seed"])
        if key not in base:
            continue
        a, b = r["scores"][JUDGE], base[key]["scores"][JUDGE]
        values = {"win": 0.5 if a == b else float(a > b)}
        values.update({k: float(r["semantic"][k]) for k in ATTRIBUTES})
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


def leave_one_out_effects(images: dict[tuple[str, ...], dict[tuple, dict]]) -> dict[str, dict[str, dict]]:
    """{lift: {metric: bootstrap summary of (the whole stack - the stack without the lift) per (prompt, seed)}}, for
    each lift whose cell `images` holds."""
    stack = tuple(LIFTED_STACK)
    keys = sorted(set.intersection(*(set(v) for v in images.values())))
    groups = [k[0] for k in keys]
    effects = {}
    for lift in LIFTED_STACK:
        without = images.get(tuple(n for n in stack if n != lift))
        if without is None:  # a lift not left out (`--leave_out`)
            continue
        effects[lift] = {metric: bootstrap_mean([images[stack][k][metric] - without[k][metric] for k in keys], groups)
                         for metric in METRICS}
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
    parser.add_argument("--leave_one_out", action="store_true",
                        help="the stack without each lift in turn (with the stack's options), not the 16 cells")
    parser.add_argument("--leave_out", nargs="+", choices=LIFTED_STACK, default=list(LIFTED_STACK),
                        help="with --leave_one_out: the lifts to leave out, one cell each (default: every lift)")
    parser.add_argument("--results", type=Path, help="also write the results, with the run's date, commit, command "
                        "and machine, here (e.g. benchmarks/results/NAME.json)")
    args = parser.parse_args()
    torch.set_num_threads(args.num_threads)
    stack = tuple(LIFTED_STACK)
    main_process = distributed_state().is_main_process  # under torchrun: one process prints and writes
    result = {}
    chosen = leave_one_out_cells(args.leave_out) if args.leave_one_out else cells()
    if args.only_cells:
        chosen = [c for c in chosen if {cell_name(c), "stack" if c == stack else None} & set(args.only_cells)]
    for name in args.sets:
        # the cells as `promptlift eval --system` runs them: the base model and the whole stack (as `--lifted`) on
        # `full_prompts`, the others on `num_prompts` (or, leaving one out, all on `full_prompts`)
        full_cells = [c for c in chosen if args.leave_one_out or c in ((), stack)]
        runs = {}
        for group, n in ((full_cells, args.full_prompts), ([c for c in chosen if c not in full_cells], args.num_prompts)):
            if not group:
                continue
            cfg = load_config(EvalConfig, None, {
                "prompts": f"world-{name}", "num_prompts": n, "seeds": args.seeds, "rewards": [JUDGE],
                "batch_size": args.batch_size, "output_dir": args.output_dir,
                "system": [f"{cell_name(c)}={','.join(cell_spec(c, args.leave_one_out))}" for c in group]})
            record = evaluate_systems(cfg)
            runs.update({c: Path(record["runs"][f"world-{name}"][cell_name(c)]) for c in group})
        if args.only_cells or not main_process:  # the tables are the main process's
            continue
        base = {(r["id"], r["seed"]): r for r in read_scores(runs[()])}
        if args.leave_one_out:
            table = system_table({cell_name(c): p for c, p in runs.items()}, "base", JUDGE)
            effects = leave_one_out_effects({c: per_image(p, base) for c, p in runs.items() if c})
            result[name] = {"cells": table, "leave_one_out": effects}
            text = (f"\nworld-{name}: the stack without each lift, {args.full_prompts} prompts x {args.seeds} seeds\n"
                    + format_system_table(table, "base")
                    + f"\n\nwhat each lift gives the stack (percentage points, 95 % CI)\n{format_effects(effects)}")
        else:
            table = system_table({cell_name(c): p for c, p in runs.items()}, "base", JUDGE, shared=True)
            full = system_table({"base": runs[()], "stack": runs[stack]}, "base", JUDGE)
            effects = marginal_effects({c: per_image(p, base) for c, p in runs.items()})
            result[name] = {"cells": table, "full": full, "marginal_effects": effects}
            text = (f"\nworld-{name}: 16 cells on {args.num_prompts} prompts x {args.seeds} seeds\n"
                    + format_system_table(table, "base")
                    + f"\n\nmarginal effect of each lift (percentage points, 95 % CI)\n{format_effects(effects)}"
                    + f"\n\nbase vs stack, {args.full_prompts} prompts x {args.seeds} seeds\n"
                    + format_system_table(full, "base"))
        print(text, flush=True)
    if result:
        record = {"run": run_record(), "sets": result}
        file = "leave_one_out.json" if args.leave_one_out else "lift_factorial.json"
        for path in [Path(args.output_dir, file), *([args.results] if args.results else [])]:
            atomic_write_json(path, record)


if __name__ == "__main__":
    main()
