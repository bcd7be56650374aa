"""In-world evaluation of a prompt refiner against the raw prompt, the "append quality keywords" expander and
the ground-truth complex prompt (upper bound), plus the diversity of its candidates.

    .venv/bin/python scripts/refiner_eval.py src/promptlift/bundle/refiner [--num_prompts 100] [--seeds 2]

For each of world-literal and world-narrative-val, every system generates the same prompts (scene i of every world
set is the same scene) with the same seeds through `promptlift eval` (runs in OUTPUT_DIR/<set>/<system>; a
finished run is read back). The aesthetic win rate vs the raw prompt is judged by aesthetic predictor B
(`world-aesthetic`, never a training signal) over (prompt, seed) pairs; semantic accuracy by the attribute judge,
with the change of all-four accuracy vs the raw prompt and its bootstrap 95 % interval (resampling prompts).
Diversity: for each prompt, the 3 candidates of the first iterative round (6 tokens, top-p 0.95, top-k 50) and 3
sampled one-shot refinements (one per mode and seed, `--max_new_tokens`, 20): distinct-1/2 and the mean pairwise cosine distance of
their all-MiniLM-L6-v2 embeddings, over the whole refined prompts and over what the refiner added (a refiner that
extends keeps the user's prompt in every candidate). An LM refiner (`--decoder lm`) has no plug-and-play features,
and ends its answer itself (no 50-token run). Writes OUTPUT_DIR/refiner_eval.json and prints the tables.
"""

import argparse
import json
from pathlib import Path

import torch

from promptlift.config import load_config
from promptlift.evaluation.diversity import distinct_n, pairwise_distance
from promptlift.evaluation.run import EvalConfig, evaluate
from promptlift.evaluation.systems import format_system_table, system_table
from promptlift.methods.refiner.lm import LM_CONFIG_FILE
from promptlift.pipeline import join_prompt

JUDGE = "world-aesthetic"


def systems(refiner: str) -> dict[str, dict]:
    """The systems compared; an LM refiner (lm_refiner.json) has no plug-and-play features and ends its own answer."""
    out = {"raw": {}, "keywords": {"lift": ["keywords"]}, "refiner": {"lift": [f"refiner={refiner}"]}}
    if not (Path(refiner) / LM_CONFIG_FILE).is_file():
        out["refiner, 50 tokens"] = {"lift": [f"refiner={refiner}"], "lift_option": ["refiner.max_new_tokens=50"]}
        out["refiner, plug-and-play"] = {"lift": [f"refiner={refiner}"], "lift_option": ["refiner.strategy=embeds"]}
    return {**out, "complex (upper bound)": {"prompts": "world-complex"}}


def run_set(name: str, args) -> dict:
    runs = {}
    for system, overrides in systems(args.refiner).items():
        out = Path(args.output_dir) / name / system.split(" (")[0].replace(", ", "-").replace(" ", "-")
        cfg = load_config(EvalConfig, None, {"prompts": f"world-{name}", "num_prompts": args.num_prompts,
                                             "seeds": args.seeds, "rewards": [JUDGE], "output_dir": str(out), **overrides})
        runs[system] = evaluate(cfg)
    return system_table(runs, "raw", JUDGE)


def diversity(name: str, args) -> dict:
    from promptlift.data import load_prompt_set
    from promptlift.methods.refiner.strategies import Refiner
    from promptlift.methods.sur_adapter.llm import LLMFeatures
    from promptlift.pipeline import load_pipeline

    refiner = Refiner.load(args.refiner, load_pipeline(None))
    prompts = [r["prompt"] for r in load_prompt_set(f"world-{name}", num_prompts=args.num_diversity_prompts)]
    rounds = [refiner.candidates(p, n=3, new_tokens=6, seed=i) for i, p in enumerate(prompts)]
    shots = [[refiner.one_shot([p], args.max_new_tokens, mode=m, sample=True, seed=3 * i + m)[0] for m in range(3)]
             for i, p in enumerate(prompts)]
    embed = LLMFeatures()
    out = {}
    for what, groups in (("first round (6 tokens)", rounds), (f"one-shot, sampled ({args.max_new_tokens} tokens)", shots)):
        added = [[c[len(h):].lstrip(", ") if c.startswith(h) else c for c in group]
                 for h, group in ((join_prompt(p, ""), g) for p, g in zip(prompts, groups))]
        for part, texts in (("whole", groups), ("added", added)):
            out[f"{what}, {part}"] = {"distinct_1": distinct_n(texts, 1), "distinct_2": distinct_n(texts, 2),
                                      "pairwise_cosine_distance": pairwise_distance(texts, embed)}
    out["samples"] = [{"prompt": p, "one_shot": refiner.one_shot([p], args.max_new_tokens)[0], "candidates": c}
                      for p, c in zip(prompts[:5], shots[:5])]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("refiner", help="Refiner folder (`promptlift train refiner` output, or the bundle's)")
    parser.add_argument("--sets", nargs="+", default=["literal", "narrative-val"])
    parser.add_argument("--num_prompts", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--num_diversity_prompts", type=int, default=64)
    parser.add_argument("--max_new_tokens", type=int, default=20, help="the sampled one-shot refinements' length")
    parser.add_argument("--num_threads", type=int, default=2)
    parser.add_argument("--output_dir", default="runs/refiner-eval")
    args = parser.parse_args()
    torch.set_num_threads(args.num_threads)
    result = {name: {"systems": run_set(name, args), "diversity": diversity(name, args)} for name in args.sets}
    Path(args.output_dir, "refiner_eval.json").write_text(json.dumps(result, indent=2))
    for name, r in result.items():
        print(f"\nworld-{name}: {args.num_prompts} prompts x {args.seeds} seeds")
        print(format_system_table(r["systems"], "raw"))
        for what, d in r["diversity"].items():
            if what != "samples":
                print(f"diversity, {what}: distinct-1 {d['distinct_1']:.3f}, distinct-2 {d['distinct_2']:.3f}, "
                      f"pairwise cosine distance {d['pairwise_cosine_distance']:.3f}")
        for sample in r["diversity"]["samples"]:
            print(f"  {sample['prompt']!r} -> {sample['one_shot']!r}; sampled: {sample['candidates']}")


if __name__ == "__main__":
    main()
