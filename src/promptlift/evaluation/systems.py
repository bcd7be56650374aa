"""Systems compared on the same prompts and seeds: semantic accuracy, aesthetic, win rate and all-four change vs a
baseline run, with bootstrap 95 % intervals over prompts (the tables of the method scripts in scripts/)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from ..stats import bootstrap_mean, win_rate
from .run import read_scores

__all__ = ["format_system_table", "system_table"]


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


def format_system_table(table: Mapping[str, dict], baseline: str = "baseline") -> str:
    """The table as aligned text: per-attribute and all-correct accuracy (%), the all-correct change and the win rate."""
    judged = next((row["semantic"] for row in table.values() if "semantic" in row), {})
    columns = [(a, max(5, len(a))) for a in judged]  # the content judge's attributes, then "all"
    lines = [f"{'system':<34} " + " ".join(f"{a:>{w}}" for a, w in columns) + f" {'all vs ' + baseline:>20} "
             f"{'aesthetic':>9}  win rate vs {baseline}"]
    for system, row in table.items():
        s = row.get("semantic", {})
        vs, change = row.get("vs_baseline"), row.get("semantic_all_change")
        win = f"{100 * vs['win_rate']:.1f} [{100 * vs['ci95'][0]:.1f}-{100 * vs['ci95'][1]:.1f}]" if vs else ""
        delta = (f"{100 * change['mean']:+.1f} [{100 * change['ci95'][0]:+.1f}, {100 * change['ci95'][1]:+.1f}]"
                 if change else "")
        cells = " ".join(f"{100 * s[a]:>{w}.1f}" if a in s else f"{'':>{w}}" for a, w in columns)
        lines.append(f"{system:<34} {cells} {delta:>20} {row['aesthetic']:>9.2f}  {win}")
    return "\n".join(lines)
