"""Curation throughput: images/s of `promptlift curate` vs the scoring models' bare batched forward (ratio).

    .venv/bin/python benchmarks/curation_throughput.py [--num_scenes 2000] [--batch_size 64] [--repeats 3]

All runs score the same world renders with the same rewards (world-aesthetic-reward + world-clip) in one
process, after a warm-up, interleaved `repeats` times; medians are compared. `curate` includes everything:
loading the rewards, reading and decoding the PNGs, decisions, the curated copy and the report. Target: ratio
>= 0.9 (all that costs at most ~10 %).
"""

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from promptlift.data.curation import CurateConfig, curate  # noqa: E402
from promptlift.data.records import iter_records  # noqa: E402
from promptlift.rewards import load_reward  # noqa: E402
from promptlift.images import images_to_tensor  # noqa: E402
from promptlift.world.config import DatasetConfig  # noqa: E402
from promptlift.world.dataset import build_dataset  # noqa: E402
from record import add_results_option, ratio, write_results  # noqa: E402  (benchmarks/record.py)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num_scenes", type=int, default=2000)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    add_results_option(parser, "curation_throughput")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    pool = build_dataset(DatasetConfig(num_scenes=args.num_scenes, output_dir=tmp / "pool"))

    records = list(iter_records(pool, caption_column="complex"))  # decoded up front: the bare forward reads nothing
    rewards = [load_reward("world-aesthetic-reward"), load_reward("world-clip")]

    def bare() -> float:
        t0 = time.perf_counter()
        with torch.no_grad():
            for start in range(0, len(records), args.batch_size):
                part = records[start : start + args.batch_size]
                x = images_to_tensor([r.image for r in part])
                for reward in rewards:
                    reward(x, [r.caption for r in part])
        return len(records) / (time.perf_counter() - t0)

    def full(read_ahead: bool, rep: int) -> float:
        t0 = time.perf_counter()
        curate(CurateConfig(input=str(pool), output_dir=tmp / f"curated-{read_ahead}-{rep}", caption_column="complex",
                            num_keep=200, batch_size=args.batch_size, read_ahead=read_ahead))
        return args.num_scenes / (time.perf_counter() - t0)

    bare(), full(False, -1)  # warm-up: kernels, allocator, file cache
    runs: dict[str, list[float]] = {"bare": [], "curate": [], "curate --read_ahead": []}
    for rep in range(args.repeats):  # interleaved, so drifts of the machine hit all three alike
        runs["bare"].append(bare())
        runs["curate"].append(full(False, rep))
        runs["curate --read_ahead"].append(full(True, rep))
    base = statistics.median(runs["bare"])
    print(f"{args.num_scenes} images, median of {args.repeats}: bare forward {base:.0f} img/s")
    rates = {name: statistics.median(runs[name]) for name in ("curate", "curate --read_ahead")}
    for name, rate in rates.items():
        print(f"{name:20s} {rate:.0f} img/s = {rate / base:.2f}x the bare forward (target >= 0.9)")
    write_results(args.results, "`promptlift curate` against the scoring models' bare forward",
                  [ratio(f"{name} / bare forward, images per second", rate / base, ">= 0.9x") for name, rate in rates.items()],
                  settings={"num_scenes": args.num_scenes, "repeats": args.repeats, "batch_size": args.batch_size},
                  images_per_second={"bare": round(base, 1), **{k: round(v, 1) for k, v in rates.items()}})


if __name__ == "__main__":
    main()
