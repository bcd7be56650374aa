"""Overhead of `promptlift eval` beyond generation and scoring themselves, as a ratio measured in one process.

    .venv/bin/python benchmarks/eval_overhead.py [--model DIR] [--num_prompts 32] [--seeds 2]

Baseline: the same images generated and scored in a bare loop (no files, no resume bookkeeping, no
summary or report). Ratio = eval wall time / baseline wall time. Default model: a tiny random SD1 pipeline.
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from promptlift.data.prompt_sets import load_prompt_set  # noqa: E402
from promptlift.evaluation.run import EvalConfig, evaluate  # noqa: E402
from promptlift.images import images_to_tensor  # noqa: E402
from promptlift.generation import generate_images, load_sampling  # noqa: E402
from promptlift.rewards import load_reward  # noqa: E402
from promptlift.tiny import save_tiny_pipeline  # noqa: E402
from record import add_results_option, ratio, write_results  # noqa: E402  (benchmarks/record.py)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None)
    parser.add_argument("--num_prompts", type=int, default=32)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    add_results_option(parser, "eval_overhead")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    model = args.model or str(save_tiny_pipeline("sd1", tmp / "model"))
    rewards = ["world-attributes", "world-clip"]
    cfg = EvalConfig(model=model, prompts="world-literal", num_prompts=args.num_prompts, seeds=args.seeds, rewards=rewards,
                     num_inference_steps=args.steps, batch_size=8, output_dir=tmp / "run")

    # baseline: generate + score in a bare loop
    pipe, lifts = load_sampling(cfg)
    pipe.set_progress_bar_config(disable=True)
    scorers = [load_reward(r) for r in rewards]
    records = load_prompt_set(cfg.prompts, num_prompts=cfg.num_prompts)
    jobs = [(r["prompt"], s) for r in records for s in range(cfg.seeds)]
    t0 = time.perf_counter()
    for start in range(0, len(jobs), cfg.batch_size):
        batch = jobs[start : start + cfg.batch_size]
        images = generate_images(pipe, cfg, [p for p, _ in batch], [s for _, s in batch], lifts)
        with torch.no_grad():
            for reward in scorers:
                reward(images_to_tensor(images), [p for p, _ in batch])
    baseline = time.perf_counter() - t0

    t0 = time.perf_counter()
    evaluate(cfg)
    full = time.perf_counter() - t0
    print(f"{len(jobs)} images, {args.steps} steps: baseline {baseline:.2f} s, promptlift eval {full:.2f} s")
    print(f"eval / baseline: {full / baseline:.2f}x  (overhead: loading, PNG writes, scores.jsonl, summary, report)")
    write_results(args.results, "`promptlift eval` against a bare generate-and-score loop",
                  [ratio("eval / bare loop, wall time", full / baseline)],
                  settings={"model": args.model or "tiny random SD1", "num_prompts": args.num_prompts, "seeds": args.seeds,
                            "steps": args.steps}, seconds={"bare": round(baseline, 3), "eval": round(full, 3)})


if __name__ == "__main__":
    main()
