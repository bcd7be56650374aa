"""How long `promptlift ... --help` takes against starting Python itself (`python -c pass`), in the same run.

    .venv/bin/python benchmarks/cli_help.py [--repeats 5]

Prints the median seconds of each and the ratio; the goal is under 1 s for every `--help`.
"""

import argparse
import statistics
import subprocess
import sys
import time


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
    repeats = parser.parse_args().repeats
    base = median_seconds([sys.executable, "-c", "pass"], repeats)
    print(f"python -c pass: {base:.3f} s")
    for args in ([], ["generate"], ["eval"], ["train", "textcraftor"], ["export", "checkpoint"], ["world", "train-bundle"]):
        seconds = median_seconds([sys.executable, "-m", "promptlift", *args, "--help"], repeats)
        print(f"promptlift {' '.join(args + ['--help'])}: {seconds:.3f} s ({seconds / base:.1f}x python -c pass)")


if __name__ == "__main__":
    main()
