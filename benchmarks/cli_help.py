"""How long `promptlift ... --help` takes against starting Python itself (`python -c pass`), in the same run.

    .venv/bin/python benchmarks/cli_help.py [--repeats 5]

Prints the median seconds of each and the ratio for every command's `--help`; the goal is under 0.5 s for each.
"""

import argparse
import statistics
import subprocess
import sys
import time

from record import add_results_option, ratio, write_results  # benchmarks/record.py


def median_seconds(args: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(args, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    add_results_option(parser, "cli_help")
    args = parser.parse_args()
    repeats = args.repeats
    base = median_seconds([sys.executable, "-c", "pass"], repeats)
    print(f"python -c pass: {base:.3f} s")
    from promptlift import cli as C
    from promptlift.methods import METHODS

    commands = [[], *[[n] for n in C.COMMANDS], *[["world", n] for n in C.WORLD_COMMANDS],
                *[["export", n] for n in C.EXPORT_COMMANDS], *[["memory", n] for n in C.MEMORY_COMMANDS],
                *[["train", n] for n in METHODS]]
    seconds = {}
    for command in commands:
        name = " ".join(["promptlift", *command, "--help"])
        seconds[name] = median_seconds([sys.executable, "-m", "promptlift", *command, "--help"], repeats)
        print(f"{name}: {seconds[name]:.3f} s ({seconds[name] / base:.1f}x python -c pass)")
    slowest = max(seconds, key=seconds.get)
    print(f"slowest: {slowest}, {seconds[slowest]:.3f} s (goal: under 0.5 s)")
    write_results(args.results, "`--help` of every command", [
        ratio(f"slowest ({slowest}) / `python -c pass`", seconds[slowest] / base),
        ratio("slowest, seconds / 0.5 s goal", seconds[slowest] / 0.5, "<= 1.0x")],
        python_seconds=round(base, 4), seconds={k: round(v, 4) for k, v in seconds.items()})


if __name__ == "__main__":
    main()
