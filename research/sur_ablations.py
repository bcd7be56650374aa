"""SUR-adapter ablations in the world: the bundle's recipe and the same run without each part, equal steps.

    .venv/bin/python research/sur_ablations.py [--max_train_steps 300] [--output_dir runs/sur-ablations]

Runs `configs/world/sur-adapter.yaml` (the bundle's recipe: the adapter cross-attends over MiniLM's token states,
per-token target of the complex prompt's embedding) as "full", then with the LLM distillation off (`llm_weight 0`),
the diffusion loss off (`diffusion_weight 0`), the complex-prompt term off (`complex_weight 0`), and the paper's
inference (the adapter reads no LLM features at all, only the prompt embedding: `llm_at_inference false`,
`llm_tokens false`, `read_prompt_embeds true`).
Each run's held-out check at its last step (64 narrative-val prompts, fixed seeds, judged by the attribute judge
and aesthetic predictor B against the base model's images) is its row; the runs share the cached features.
Writes OUTPUT_DIR/ablations.json and prints a table. A finished run is read back, not trained again.
"""

import argparse
import json
from pathlib import Path

from promptlift.config import load_config
from promptlift.methods.sur_adapter.config import SURAdapterConfig
from promptlift.methods.sur_adapter.trainer import train

ABLATIONS = {
    "full": {},
    "no LLM distillation": {"llm_weight": 0.0},
    "no diffusion loss": {"diffusion_weight": 0.0},
    "no complex-prompt term": {"complex_weight": 0.0},
    "LLM not read at inference (paper)": {"llm_at_inference": False, "llm_tokens": False, "read_prompt_embeds": True},
}


def run_folder(name: str) -> str:
    return name.split(" (")[0].replace(" ", "-")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/world/sur-adapter.yaml")
    parser.add_argument("--max_train_steps", type=int, default=300)
    parser.add_argument("--num_threads", type=int, default=2)
    parser.add_argument("--output_dir", default="runs/sur-ablations")
    parser.add_argument("--only", nargs="+", choices=list(ABLATIONS), metavar="NAME",
                        help="train only these runs (e.g. two processes, one thread each), still reading every finished one")
    args = parser.parse_args()
    out, rows = Path(args.output_dir), {}
    for name, overrides in ABLATIONS.items():
        if args.only and name not in args.only and not (out / run_folder(name) / "eval_history.json").is_file():
            continue
        run = out / run_folder(name)
        history = run / "eval_history.json"
        if not history.is_file():
            cfg = load_config(SURAdapterConfig, args.config, {
                **overrides, "output_dir": str(run), "max_train_steps": args.max_train_steps,
                "eval_steps": args.max_train_steps, "checkpointing_steps": 100, "num_threads": args.num_threads})
            train(cfg)
        rows[name] = json.loads(history.read_text())[-1]
    if not rows:
        return
    (out / "ablations.json").write_text(json.dumps(rows, indent=2))
    print(f"{'run':<36} {'setting':>7} {'kind':>5} {'colour':>6} {'count':>5} {'all':>5} {'win rate vs base':>18}")
    for name, r in rows.items():
        s = r["semantic"]
        print(f"{name:<36} " + " ".join(f"{100 * s[a]:>{w}.1f}" for a, w in
                                        (("setting", 7), ("kind", 5), ("color", 6), ("count", 5), ("all", 5)))
              + f" {100 * r['win_rate_vs_base']:>8.1f} [{100 * r['win_rate_ci95'][0]:.1f}-{100 * r['win_rate_ci95'][1]:.1f}]")
    base = next(iter(rows.values()))["semantic_base"]
    print(f"{'base model':<36} " + " ".join(f"{100 * base[a]:>{w}.1f}" for a, w in
                                             (("setting", 7), ("kind", 5), ("color", 6), ("count", 5), ("all", 5))))


if __name__ == "__main__":
    main()
