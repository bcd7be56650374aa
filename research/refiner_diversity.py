"""How diverse a prompt refiner's candidates are: for each prompt, the 3 candidates of the first iterative round
(6 tokens, top-p 0.95, top-k 50) and 3 sampled one-shot refinements (one per mode and seed, `--max_new_tokens`):
distinct-1/2 and the mean pairwise cosine distance of their all-MiniLM-L6-v2 embeddings, over the whole refined
prompts and over what the refiner added (a refiner that extends keeps the user's prompt in every candidate).

    .venv/bin/python research/refiner_diversity.py src/promptlift/bundle/refiner [--sets literal narrative-val]

What the refiner's images gain is `promptlift eval --system` (docs/methods/refiner.md): raw=, keywords=keywords,
refiner=refiner=FOLDER. Writes OUTPUT_DIR/refiner_diversity.json and prints the numbers.
"""

import argparse
import json
from pathlib import Path

import torch

from promptlift.evaluation.diversity import distinct_n, pairwise_distance
from promptlift.pipeline import join_prompt


def diversity(name: str, args) -> dict:
    from promptlift.data import load_prompt_set
    from promptlift.methods.refiner.lift import Refiner
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
    parser.add_argument("--num_diversity_prompts", type=int, default=64)
    parser.add_argument("--max_new_tokens", type=int, default=20, help="the sampled one-shot refinements' length")
    parser.add_argument("--num_threads", type=int, default=2)
    parser.add_argument("--output_dir", default="runs/refiner-diversity")
    args = parser.parse_args()
    torch.set_num_threads(args.num_threads)
    result = {name: diversity(name, args) for name in args.sets}
    Path(args.output_dir).mkdir(parents=True, exist_ok=True)
    Path(args.output_dir, "refiner_diversity.json").write_text(json.dumps(result, indent=2))
    for name, r in result.items():
        print(f"\nworld-{name}:")
        for what, d in r.items():
            if what != "samples":
                print(f"diversity, {what}: distinct-1 {d['distinct_1']:.3f}, distinct-2 {d['distinct_2']:.3f}, "
                      f"pairwise cosine distance {d['pairwise_cosine_distance']:.3f}")
        for sample in r["samples"]:
            print(f"  {sample['prompt']!r} -> {sample['one_shot']!r}; sampled: {sample['candidates']}")


if __name__ == "__main__":
    main()
