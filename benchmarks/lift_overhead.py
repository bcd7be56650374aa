"""Inference overhead of lifts vs the base model, as ratios measured in one process.

    .venv/bin/python benchmarks/lift_overhead.py [--lift sur-adapter] [--lift sur-adapter=FOLDER ...]
        [--steps 25] [--batch_sizes 1 16] [--repeats 5] [--num_threads 2]

For each batch size, one `generate_images` call of the base pipeline and one of the pipeline with each lift
(every lift applied alone; everything a generation does counts: prompt rewrites, the text encoder, the lift's own
models such as the SUR-adapter's LLM teacher, the denoising steps, the VAE decode) are timed interleaved, `repeats`
times after a warm-up, on the same world prompts and seeds. Prints the median seconds and lifted / base.
Default model: the embedded one.
"""

import argparse
import os
import statistics
import time

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from promptlift.evaluation.prompts import load_prompt_set  # noqa: E402
from promptlift.generation import SamplingConfig, generate_images, load_sampling  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None)
    parser.add_argument("--lift", action="append", default=None, help="NAME[=PATH], repeatable (default: sur-adapter)")
    parser.add_argument("--prompts", default="world-narrative-val")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--num_threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.num_threads)
    systems = {"base": []} | {spec: [spec] for spec in args.lift or ["sur-adapter"]}
    loaded = {}
    for name, lift in systems.items():
        cfg = SamplingConfig(model=args.model, lift=lift, num_inference_steps=args.steps)
        pipe, lifts = load_sampling(cfg)
        pipe.set_progress_bar_config(disable=True)
        loaded[name] = (cfg, pipe, lifts)
    prompts = [r["prompt"] for r in load_prompt_set(args.prompts, num_prompts=max(args.batch_sizes))]
    print(f"{args.steps} steps, {torch.get_num_threads()} threads, median of {args.repeats} after a warm-up")
    for size in args.batch_sizes:
        batch, seeds = prompts[:size], list(range(size))
        times = {name: [] for name in systems}
        for repeat in range(args.repeats + 1):
            for name, (cfg, pipe, lifts) in loaded.items():
                t0 = time.perf_counter()
                generate_images(pipe, cfg, batch, seeds, lifts)
                if repeat:  # the first round warms up
                    times[name].append(time.perf_counter() - t0)
        base = statistics.median(times["base"])
        for name, t in times.items():
            median = statistics.median(t)
            print(f"batch {size:>3}  {name:<40} {median:8.3f} s  {median / base:6.3f}x base")


if __name__ == "__main__":
    main()
