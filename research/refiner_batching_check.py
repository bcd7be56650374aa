"""The bundle refiner's one-shot rewrites decoded one prompt at a time vs 16 at a time: how many agree, and the time.

    .venv/bin/python research/refiner_batching_check.py [--num_prompts 200] [--num_threads 2]
"""

import argparse
import time

import torch

from promptlift.data import load_prompt_set
from promptlift.methods import METHODS
from promptlift.methods.refiner import Refiner
from promptlift.pipeline import load_pipeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num_prompts", type=int, default=200)
    parser.add_argument("--num_threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.num_threads)
    refiner = Refiner.load(METHODS["refiner"].bundle_weights, load_pipeline(None))
    for name in ("world-narrative-val", "world-literal"):
        prompts = [r["prompt"] for r in load_prompt_set(name, num_prompts=args.num_prompts)]
        start = time.perf_counter()
        single = [refiner.one_shot([p])[0] for p in prompts]
        single_s = time.perf_counter() - start
        start = time.perf_counter()
        batched = [text for i in range(0, len(prompts), 16) for text in refiner.one_shot(prompts[i:i + 16])]
        batched_s = time.perf_counter() - start
        same = sum(a == b for a, b in zip(single, batched))
        print(f"{name}: {same}/{len(prompts)} rewrites equal; one at a time {single_s:.1f} s, 16 at a time "
              f"{batched_s:.1f} s ({single_s / batched_s:.1f}x faster)")


if __name__ == "__main__":
    main()
