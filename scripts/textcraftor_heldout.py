"""Held-out check of TextCraftor encoders, their weight mix, alpha and the hybrid schedule (64 prompts, fixed seeds).

    .venv/bin/python scripts/textcraftor_heldout.py runs/textcraftor/final runs/textcraftor-align/best

Judged by aesthetic predictor B (`world-aesthetic`) and the attribute judge, which no training run uses as a
reward; the base model's images of the same prompts and seeds are the reference. Writes runs/tc-check.json.
"""

import argparse
import json

import torch

from promptlift.methods.heldout import HeldOutEvaluator
from promptlift.pipeline import load_lifts, load_pipeline, recommended_guidance_scale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", help="TextCraftor output A (e.g. aesthetic-heavy)")
    parser.add_argument("b", help="TextCraftor output B (e.g. alignment-heavy)")
    parser.add_argument("--sets", nargs="+", default=["literal", "narrative-val"])
    parser.add_argument("--num_prompts", type=int, default=64)
    parser.add_argument("--num_threads", type=int, default=1)
    parser.add_argument("--output", default="runs/tc-check.json")
    args = parser.parse_args()
    torch.set_num_threads(args.num_threads)
    a, b = args.a, args.b
    configs = {
        "A": ([f"textcraftor={a}"], []),
        "B": ([f"textcraftor={b}"], []),
        "mix A:0.5,B:0.5": ([f"textcraftor={a}:0.5,{b}:0.5"], []),
        "A, alpha 0.5": ([f"textcraftor={a}"], ["textcraftor.alpha=0.5"]),
        "A, no hybrid (switch 0)": ([f"textcraftor={a}"], ["textcraftor.switch_step=0"]),
    }
    base = load_pipeline(None, dtype="float32")
    out = {}
    for name_set in args.sets:
        ev = HeldOutEvaluator(base, name_set, args.num_prompts, "world-aesthetic",
                              guidance_scale=recommended_guidance_scale(None))
        for name, (specs, opts) in configs.items():
            lifts = load_lifts(specs, opts)
            ev.pipe = load_pipeline(None, dtype="float32", lifts=lifts)  # base images stay the base pipeline's
            m = ev(lifts)
            out[f"{name_set} | {name}"] = m
            gain = 100 * (m["judge_mean"] / m["judge_mean_base"] - 1)
            print(f"{name_set:14s} {name:26s} win {m['win_rate_vs_base']:.3f} judge {m['judge_mean_base']:.2f}->"
                  f"{m['judge_mean']:.2f} ({gain:+.1f} %) all {m['semantic_all_base']:.3f}->{m['semantic_all']:.3f}",
                  flush=True)
    with open(args.output, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
