"""What every benchmark here shares: `--results FILE` (default benchmarks/results/NAME.json) and writing its numbers
there with the run record (date, commit, command, machine); scripts/make_reports.py renders each file's `ratios` on
docs/reports/speed.md. A benchmark imports it as its sibling module (`from record import ...`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from promptlift.files import atomic_write_json
from promptlift.runs import run_record

RESULTS = Path(__file__).resolve().parent / "results"

__all__ = ["RESULTS", "add_results_option", "ratio", "write_results"]


def add_results_option(parser: argparse.ArgumentParser, name: str) -> None:
    """`--results FILE`, by default benchmarks/results/NAME.json."""
    parser.add_argument("--results", type=Path, default=RESULTS / f"{name}.json",
                        help=f"Where the numbers go, with the run record (default: benchmarks/results/{name}.json).")


def ratio(what: str, value: float, goal: str | None = None) -> dict:
    """One row of the speed page: a ratio against the baseline measured in the same run, and its goal if any."""
    return {"what": what, "value": round(value, 4), "goal": goal}


def write_results(path: Path, title: str, ratios: list[dict], **numbers) -> None:
    """Write `numbers` and the `ratios` the speed page shows to `path` (atomically), with the run record."""
    atomic_write_json(path, {"title": title, "run": run_record(), "ratios": ratios, **numbers})
    print(f"written: {path}")
