"""Systems compared on the same prompts and seeds (`promptlift eval --system NAME=LIFT[,LIFT...]`): every system an
eval run of every prompt set, then per set a table against a baseline system: semantic accuracy, the judge's mean,
the win rate and the all-correct change, with bootstrap 95 % intervals over prompts."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Mapping

import numpy as np

from ..pipeline import LIFTS, parse_lift
from ..pipeline.stack import expand_stack
from ..registry import load_plugins
from ..stats import bootstrap_mean, win_rate
from ..files import atomic_write_json
from ..devices import distributed_state
from ..runs import run_record
from .run import JUDGES_FILE, EvalConfig, evaluate, read_scores

__all__ = ["SYSTEMS_FILE", "category_table", "evaluate_systems", "format_category_table", "format_system_table",
           "parse_system", "question_table", "system_table"]

SYSTEMS_FILE = "systems.json"
_SYSTEM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
_OPTION = re.compile(r"^([a-z0-9-]+)\.[a-z_][a-z0-9_]*=")


def parse_system(spec: str) -> tuple[str, list[str], list[str]]:
    """`NAME=LIFT[,LIFT...]` -> (NAME, `--lift` specs, `--lift_option`s). A LIFT is `lifted` (the whole stack, its
    lifts and options, which the others given override), `NAME[=PATH]` (a path with commas, as a TextCraftor mix
    `textcraftor=a:0.5,b:0.5`, stays whole) or `LIFT.KEY=VALUE`; `NAME=` is the model without lifts."""
    name, sep, items = spec.partition("=")
    name = name.strip()
    if not sep or not _SYSTEM_NAME.match(name):
        raise ValueError(f"`--system {spec}` must be NAME=LIFT[,LIFT...] with a NAME of letters, digits and -_.+ "
                         "(e.g. --system stack=lifted, --system base=).")
    load_plugins()
    lifts, options, lifted = [], [], False
    for item in (i.strip() for i in items.split(",") if i.strip()):
        option = _OPTION.match(item)
        if item == "lifted":
            lifted = True
        elif option and option.group(1) in LIFTS:
            options.append(item)
        elif item.partition("=")[0] in LIFTS or not lifts or Path(item).expanduser().is_dir():
            parse_lift(item)  # refuses an unknown lift by name (a lift folder names its own)
            lifts.append(item)
        else:  # a PATH of the lift before it, cut at its comma
            lifts[-1] += "," + item
    if lifted:
        lifts, options = expand_stack(lifts, options)
    return name, lifts, options


def evaluate_systems(cfg: EvalConfig) -> dict:
    """Every system of `cfg.system` evaluated on every prompt set of `cfg.prompts` (comma-separated) with the same
    prompts and seeds (runs in OUTPUT_DIR/SET/SYSTEM; finished ones are read back, unfinished ones resumed); per set the
    table against the baseline, printed and written with the run record (date, commit, command, machine) to
    OUTPUT_DIR/systems.json (and `cfg.results`). Under `accelerate launch` / `torchrun` the processes share each run."""
    systems = {}
    for spec in cfg.system:
        name, lifts, options = parse_system(spec)
        if name in systems:
            raise ValueError(f"two systems are named {name!r}; give each --system its own NAME.")
        systems[name] = {"lift": lifts, "lift_option": options}
    baseline = cfg.baseline or next(iter(systems))
    if baseline not in systems:
        raise ValueError(f"`baseline` {baseline!r} is none of the systems ({', '.join(systems)}).")
    sets = [s.strip() for s in str(cfg.prompts).split(",") if s.strip()]
    main = distributed_state().is_main_process
    tables, folders, by_category, by_question, judged_with = {}, {}, {}, {}, {}
    for prompt_set in sets:
        runs = folders[prompt_set] = {}
        for name, lifts in systems.items():
            out = Path(cfg.output_dir) / _folder(prompt_set) / name
            runs[name] = evaluate(dataclasses.replace(cfg, prompts=prompt_set, system=[], baseline=None, judge=None,
                                                      results=None, title=None, lifted=False, output_dir=out, **lifts))
        tables[prompt_set] = system_table(runs, baseline, cfg.judge)
        categories = by_category[prompt_set] = category_table(runs, baseline, cfg.judge)
        questions = by_question[prompt_set] = question_table(runs, baseline, cfg.judge)
        judged_with[prompt_set] = _judged_with(runs[baseline], cfg.judge)
        if main:
            with_ = f" ({judged_with[prompt_set]})" if judged_with[prompt_set] else ""
            print(f"\n{prompt_set}: {cfg.num_prompts or 'all'} prompts x {cfg.seeds} seeds, judged by {cfg.judge}{with_}\n"
                  + format_system_table(tables[prompt_set], baseline, cfg.judge), flush=True)
            if categories:
                print(f"\n{prompt_set} by category ({cfg.judge}, mean [95 % interval]):\n"
                      + format_category_table(categories), flush=True)
            if questions:
                print(f"\n{prompt_set} by question category ({cfg.judge}, share of questions right [95 % interval]):\n"
                      + format_category_table(questions), flush=True)
    record = {"title": cfg.title or f"{', '.join(systems)} on {', '.join(sets)}", "run": run_record(),
              "model": cfg.model, "judge": cfg.judge, "baseline": baseline, "num_prompts": cfg.num_prompts,
              "seeds": cfg.seeds, "prompts_subset": cfg.prompts_subset, "systems": systems, "sets": tables,
              "by_category": {name: table for name, table in by_category.items() if table},
              "by_question_category": {name: table for name, table in by_question.items() if table},
              "judged_with": {name: text for name, text in judged_with.items() if text},
              "runs": {name: {system: str(run) for system, run in runs.items()} for name, runs in folders.items()}}
    if main:
        for path in [Path(cfg.output_dir) / SYSTEMS_FILE, *([cfg.results] if cfg.results else [])]:
            atomic_write_json(path, record)
    return record


def _folder(prompt_set: str) -> str:
    """A run folder's name for a prompt set: its name, or a file's stem."""
    path = Path(prompt_set)
    return path.stem if path.suffix in (".txt", ".jsonl") else prompt_set


def _judged_with(run: Path, judge: str) -> str | None:
    """The models and rules the judge of a run scored with (its judges.json), None when it names none."""
    path = Path(run) / JUDGES_FILE
    return json.loads(path.read_text()).get(judge) if path.is_file() else None


def _rows(run: Path) -> dict[tuple, dict]:
    return {(r["id"], r["seed"]): r for r in read_scores(run)}


def system_table(runs: Mapping[str, Path], baseline: str, judge: str, shared: bool = False) -> dict[str, dict]:
    """{system: {"aesthetic", "semantic": {attribute: accuracy, "all"}, "vs_baseline"?, "semantic_all_change"?}}.

    Every system is scored on the (prompt, seed) pairs it shares with the baseline run `runs[baseline]`; with
    `shared`, on the pairs all runs share.
    """
    rows = {name: _rows(Path(run)) for name, run in runs.items()}
    base = rows[baseline]
    common = set.intersection(*(set(r) for r in rows.values())) if shared else set(base)
    table = {}
    for system, these in rows.items():
        keys = sorted(set(these) & common)
        if not keys:
            raise ValueError(f"run of {system!r} ({runs[system]}) shares no (prompt, seed) pair with the baseline's.")
        row = {"n": len(keys), "aesthetic": sum(these[k]["scores"][judge] for k in keys) / len(keys)}
        if all("semantic" in these[k] for k in keys):
            row["semantic"] = {a: sum(these[k]["semantic"][a] for k in keys) / len(keys) for a in these[keys[0]]["semantic"]}
            row["semantic"]["all"] = sum(all(these[k]["semantic"].values()) for k in keys) / len(keys)
        if system != baseline:
            groups = [k[0] for k in keys]
            row["vs_baseline"] = win_rate([these[k]["scores"][judge] for k in keys],
                                          [base[k]["scores"][judge] for k in keys], groups)
            if "semantic" in row:
                row["semantic_all_change"] = bootstrap_mean(
                    [all(these[k]["semantic"].values()) - all(base[k]["semantic"].values()) for k in keys], groups)
        table[system] = row
    return table


def category_table(runs: Mapping[str, Path], baseline: str, judge: str) -> dict[str, dict]:
    """{category: {system: {"mean", "ci95", "n"}}} of `judge` on the pairs each system shares with the baseline run,
    and "overall", the mean over categories (as GenEval scores: each tag counts alike), its interval from the
    categories' bootstrap; {} for a set of fewer than two categories (a benchmark's own table, e.g. GenEval's tags)."""
    rows = {name: _rows(Path(run)) for name, run in runs.items()}
    keys = set(rows[baseline])
    categories = sorted({r.get("category") for r in rows[baseline].values() if r.get("category")})
    if len(categories) < 2:
        return {}
    table: dict[str, dict] = {c: {} for c in [*categories, "overall"]}
    for system, these in rows.items():
        shared = [these[k] for k in sorted(keys & set(these))]
        draws = []
        for i, c in enumerate(categories):  # categories hold different prompts: independent resamples
            scored = [r for r in shared if r.get("category") == c]
            result = bootstrap_mean([r["scores"][judge] for r in scored], [r["id"] for r in scored], seed=i,
                                    return_draws=True)
            draws.append(result.pop("draws"))
            table[c][system] = {**result, "n": len(scored)}
        overall = np.mean(draws, axis=0)
        table["overall"][system] = {"mean": float(np.mean([table[c][system]["mean"] for c in categories])),
                                    "ci95": [float(np.percentile(overall, 2.5)), float(np.percentile(overall, 97.5))],
                                    "n": len(shared)}
    return table


def question_table(runs: Mapping[str, Path], baseline: str, judge: str) -> dict[str, dict]:
    """{question category: {system: {"mean", "ci95", "n"}}}: the share of all questions of the category answered
    right (as DPG-Bench scores its categories), from the question judge's per-image details, and "overall", the mean
    image score; intervals by resampling prompts. {} when `judge` keeps no questions per image."""
    rows = {name: _rows(Path(run)) for name, run in runs.items()}
    keys = set(rows[baseline])
    if not keys or not all("questions" in rows[baseline][k].get("details", {}).get(judge, {}) for k in keys):
        return {}
    categories = sorted({c for r in rows[baseline].values() for c in r["details"][judge]["questions"]})
    table: dict[str, dict] = {c: {} for c in [*categories, "overall"]}
    for system, these in rows.items():
        shared = [these[k] for k in sorted(keys & set(these))]
        for c in categories:  # each question a 0/1 value, grouped by its prompt
            values, groups = [], []
            for r in shared:
                right, asked = r["details"][judge]["questions"].get(c, (0, 0))
                values += [1.0] * right + [0.0] * (asked - right)
                groups += [r["id"]] * asked
            table[c][system] = bootstrap_mean(values, groups)  # the systems share the prompts, so the questions
        table["overall"][system] = bootstrap_mean([r["scores"][judge] for r in shared], [r["id"] for r in shared])
    return table


def format_category_table(table: Mapping[str, dict]) -> str:
    """The category table as aligned text: a row per category (then overall), a column per system."""
    systems = list(next(iter(table.values())))
    width = max(12, *(len(c) for c in table))
    lines = [f"{'category':<{width}} " + " ".join(f"{s:>22}" for s in systems)]
    for category, cells in table.items():
        lines.append(f"{category:<{width}} " + " ".join(
            f"{cells[s]['mean']:>7.3f} [{cells[s]['ci95'][0]:.3f}-{cells[s]['ci95'][1]:.3f}]" for s in systems))
    return "\n".join(lines)


def format_system_table(table: Mapping[str, dict], baseline: str = "baseline", judge: str = "aesthetic") -> str:
    """The table as aligned text: per-attribute and all-correct accuracy (%), the all-correct change, the judge's mean
    (the rows' "aesthetic", named by `judge`) and the win rate."""
    judged = next((row["semantic"] for row in table.values() if "semantic" in row), {})
    columns = [(a, max(5, len(a))) for a in judged]  # the content judge's attributes, then "all"
    lines = [f"{'system':<34} " + " ".join(f"{a:>{w}}" for a, w in columns) + f" {'all vs ' + baseline:>20} "
             f"{judge:>9}  win rate vs {baseline}"]
    for system, row in table.items():
        s = row.get("semantic", {})
        vs, change = row.get("vs_baseline"), row.get("semantic_all_change")
        win = f"{100 * vs['win_rate']:.1f} [{100 * vs['ci95'][0]:.1f}-{100 * vs['ci95'][1]:.1f}]" if vs else ""
        delta = (f"{100 * change['mean']:+.1f} [{100 * change['ci95'][0]:+.1f}, {100 * change['ci95'][1]:+.1f}]"
                 if change else "")
        cells = " ".join(f"{100 * s[a]:>{w}.1f}" if a in s else f"{'':>{w}}" for a, w in columns)
        lines.append(f"{system:<34} {cells} {delta:>20} {row['aesthetic']:>{max(9, len(judge))}.2f}  {win}")
    return "\n".join(lines)
