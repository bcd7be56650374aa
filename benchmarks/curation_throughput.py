"""Curation throughput: images/s of `promptlift curate` vs the scoring models' bare batched forward (ratio).

    .venv/bin/python benchmarks/curation_throughput.py [--num_scenes 2000] [--batch_size 64]

Both runs score the same world renders with the same rewards (world-aesthetic-reward + world-clip) in one
process. Target: ratio >= 0.9 (reading, thumbnails, decisions and writing cost at most ~10 %).
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from promptlift.data.curation import CurateConfig, curate  # noqa: E402
from promptlift.data.records import iter_records  # noqa: E402
from promptlift.rewards import load_reward  # noqa: E402
from promptlift.utils import images_to_tensor  # noqa: E402
from promptlift.world.config import DatasetConfig  # noqa: E402
from promptlift.world.dataset import build_dataset  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num_scenes", type=int, default=2000)
    parser.add_argument("--batch_size", type=int, default=64)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    pool = build_dataset(DatasetConfig(num_scenes=args.num_scenes, output_dir=tmp / "pool"))

    records = list(iter_records(pool, caption_column="complex"))  # decoded up front: the bare forward reads nothing
    rewards = [load_reward("world-aesthetic-reward"), load_reward("world-clip")]
    t0 = time.perf_counter()
    with torch.no_grad():
        for start in range(0, len(records), args.batch_size):
            part = records[start : start + args.batch_size]
            x = images_to_tensor([r.image for r in part])
            for reward in rewards:
                reward(x, [r.caption for r in part])
    bare = len(records) / (time.perf_counter() - t0)

    t0 = time.perf_counter()
    curate(CurateConfig(input=str(pool), output_dir=tmp / "curated", caption_column="complex", num_keep=200,
                        batch_size=args.batch_size))
    full = args.num_scenes / (time.perf_counter() - t0)
    print(f"{args.num_scenes} images: bare forward {bare:.0f} img/s, promptlift curate {full:.0f} img/s")
    print(f"curate / bare forward: {full / bare:.2f}x (target >= 0.9)")


if __name__ == "__main__":
    main()
