"""Text-level accuracy of prompt refiners on world prompt sets: does the refined prompt state every attribute of the
scene, and in the words the base model was trained on?

    .venv/bin/python research/refiner_text_eval.py NAME=REFINER_FOLDER [...] [--sets narrative-val mixed-val literal]
        [--num_prompts 200] [--prompt_seed 3] [--max_new_tokens 24] [--batch_size 16] [--results FILE]

Each refiner rewrites each set's prompts one-shot (greedy); the rewrite is parsed twice by the world's `parse_prompt`:
"kept" with every phrasing the world knows (the content survived the rewrite), "literal" with the literal and
complex prompts' words alone (the base model can draw it: it never saw a narrative phrasing). A row `none` is the
user's prompt as it is. `--prompt_seed 3` draws the selection scenes (the trainers' held-out check's), 0 the report's.
Prints a table per set; `--results FILE` writes it with the run record (date, commit, command, machine).
"""

import argparse
import time

import torch

from promptlift.methods.refiner.lift import Refiner
from promptlift.pipeline import load_pipeline
from promptlift.files import atomic_write_json
from promptlift.runs import run_record
from promptlift.world.dataset import iter_prompt_set
from promptlift.world.prompts import parse_prompt
from promptlift.world.scene import ATTRIBUTES


def accuracy(texts: list[str], expected: list[dict], pools: tuple[str, ...]) -> dict[str, float]:
    """Per-attribute and all-four share of `texts` that parse to their `expected` attributes."""
    parsed = [parse_prompt(t, pools) for t in texts]
    out = {a: sum(p.get(a) == e[a] for p, e in zip(parsed, expected)) / len(texts) for a in ATTRIBUTES}
    out["all"] = sum(all(p.get(a) == e[a] for a in ATTRIBUTES) for p, e in zip(parsed, expected)) / len(texts)
    return {k: round(100 * v, 1) for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("refiners", nargs="+", help="NAME=FOLDER of each refiner")
    parser.add_argument("--sets", nargs="+", default=["narrative-val", "mixed-val", "literal"])
    parser.add_argument("--num_prompts", type=int, default=200)
    parser.add_argument("--prompt_seed", type=int, default=3, help="3: the selection scenes; 0: the report's")
    parser.add_argument("--max_new_tokens", type=int, default=24)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--num_threads", type=int, default=None)
    parser.add_argument("--results", default=None, help="write the table and the run record here (JSON)")
    args = parser.parse_args()
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    pipe = load_pipeline(dtype="float32", device="cpu")  # the T5 refiner reads the pipeline's text encoder
    systems = {"none": None, **{spec.partition("=")[0]: Refiner.load(spec.partition("=")[2], pipe) for spec in args.refiners}}
    table: dict = {}
    for name in args.sets:
        rows = list(iter_prompt_set(name, args.num_prompts, seed=args.prompt_seed))
        prompts, expected = [r["prompt"] for r in rows], [r["expected"] for r in rows]
        for system, refiner in systems.items():
            start, texts = time.perf_counter(), []
            for i in range(0, len(prompts), args.batch_size):
                batch = prompts[i:i + args.batch_size]
                texts += batch if refiner is None else refiner.one_shot(batch, args.max_new_tokens)
            table.setdefault(name, {})[system] = {
                "kept": accuracy(texts, expected, ("train", "val")), "literal": accuracy(texts, expected, ()),
                "seconds_per_prompt": round((time.perf_counter() - start) / len(prompts), 3),
                "examples": [f"{p} -> {t}" for p, t in list(zip(prompts, texts))[:5]]}
        print(f"\n{name} ({len(prompts)} prompts, seed {args.prompt_seed}): all-four / setting kind colour count")
        for system, row in table[name].items():
            lit, kept = row["literal"], row["kept"]
            print(f"  {system:12s} literal {lit['all']:5.1f} ({lit['setting']:.1f} {lit['kind']:.1f} {lit['color']:.1f} "
                  f"{lit['count']:.1f})  kept {kept['all']:5.1f}  {row['seconds_per_prompt']:.2f} s/prompt")
    if args.results:
        atomic_write_json(args.results, {"run": run_record(), "args": vars(args), "table": table})


if __name__ == "__main__":
    main()
