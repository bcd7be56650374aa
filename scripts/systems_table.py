"""The table of `promptlift eval` runs of one prompt set against a baseline run: semantic accuracy per attribute and
all four, the all-four change with its bootstrap 95 % interval, the aesthetic and the win rate vs the baseline.

    .venv/bin/python scripts/systems_table.py base=RUN_DIR NAME=RUN_DIR [...] [--judge world-aesthetic]
        [--results FILE] [--title TEXT]

The first run is the baseline. `--results FILE` writes the table with the run record (date, commit, command,
machine) where scripts/make_reports.py and the notes read it.
"""

import argparse
from pathlib import Path

from promptlift.evaluation.systems import format_system_table, system_table
from promptlift.utils import atomic_write_json, run_record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", help="NAME=RUN_DIR; the first is the baseline")
    parser.add_argument("--judge", default="world-aesthetic")
    parser.add_argument("--results", default=None)
    parser.add_argument("--title", default=None)
    args = parser.parse_args()
    runs = {spec.partition("=")[0]: Path(spec.partition("=")[2]) for spec in args.runs}
    baseline = next(iter(runs))
    table = system_table(runs, baseline, args.judge)
    print(format_system_table(table, baseline))
    if args.results:
        atomic_write_json(args.results, {"title": args.title, "run": run_record(), "judge": args.judge,
                                         "runs": {k: str(v) for k, v in runs.items()}, "table": table})


if __name__ == "__main__":
    main()
