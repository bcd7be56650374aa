"""In-world evaluation of SUR-adapters against the base model, on world prompt sets (docs/reports/narrative.md).

    .venv/bin/python scripts/sur_eval.py NAME=ADAPTER_FOLDER [...] [--sets narrative-val narrative-train literal]
        [--num_prompts 200] [--seeds 2] [--prompt_seed 0] [--gate none] [--stack] [--output_dir runs/sur-eval]

For each world set every system generates the same prompts (scene i of every world set is the same scene, seed 0
of the prompt stream, apart from the trainers' held-out check at seed 3) with the same image seeds through
`promptlift eval` (runs in OUTPUT_DIR/<set>/<system>; a finished run is read back). Semantic accuracy by the
attribute judge, with the change of all-four accuracy vs the base model and its bootstrap 95 % interval; the
aesthetic win rate vs base judged by aesthetic predictor B (`world-aesthetic`, never a training signal). With no
adapter given, only the base runs are made. Each adapter is measured whole, ungated (`sur-adapter.gate=none`: a
folder's lift.json gate is the lifted stack's concern) unless `--gate LOW:HIGH|learnt|default` says otherwise; with
`--stack` each adapter runs inside the lifted stack (`--lifted`, its adapter in the stack's place, reading what
`--reads` says). `--prompt_seed 3` draws the trainers'
held-out scenes (the selection prompts) instead of the report's (0). Writes OUTPUT_DIR/sur_eval.json and prints a
table per set; `--results FILE` writes the same record (with the date, commit, command and machine) where
scripts/make_reports.py reads it. Runs under torchrun as `promptlift eval` does (the processes share each run's
batches): `OMP_NUM_THREADS=1 .venv/bin/torchrun --nproc_per_node 2 scripts/sur_eval.py ... --num_threads 1`.
"""

import argparse
import json
from pathlib import Path

import torch

from promptlift.config import load_config
from promptlift.evaluation.run import EvalConfig, evaluate
from promptlift.evaluation.systems import format_system_table, system_table
from promptlift.utils import atomic_write_json, atomic_write_text, distributed_state, run_record
from promptlift.world.dataset import iter_prompt_set

JUDGE = "world-aesthetic"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("adapters", nargs="*", help="NAME=FOLDER of a trained adapter (`promptlift train sur-adapter`)")
    parser.add_argument("--sets", nargs="+", default=["narrative-val", "narrative-train", "literal"])
    parser.add_argument("--num_prompts", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--num_threads", type=int, default=2)
    parser.add_argument("--prompt_seed", type=int, default=0, help="0: the report scenes; 3: the held-out check's")
    parser.add_argument("--gate", default="none",
                        help="the adapters' gate: none, LOW:HIGH, learnt (the adapter's head), or default (lift.json)")
    parser.add_argument("--stack", action="store_true", help="each adapter inside the lifted stack")
    parser.add_argument("--reads", default="default", help="user, rewrite, or default (the folder's lift.json, else user)")
    parser.add_argument("--output_dir", default="runs/sur-eval")
    parser.add_argument("--title", default=None, help="the results' heading in the report page")
    parser.add_argument("--results", type=Path, help="also write the results here (e.g. benchmarks/results/NAME.json, "
                                                    "which scripts/make_reports.py reads)")
    args = parser.parse_args()
    torch.set_num_threads(args.num_threads)
    systems = {"base": []}
    for spec in args.adapters:
        name, sep, folder = spec.partition("=")
        if not sep or not (Path(folder) / "config.json").is_file():
            parser.error(f"adapter {spec!r}: give NAME=FOLDER, a folder with the adapter's config.json.")
        systems[name] = [f"sur-adapter={folder}"]
    options = [] if args.gate == "default" else [f"sur-adapter.gate={args.gate}"]
    if args.reads != "default":
        options.append(f"sur-adapter.reads={args.reads}")
    out = Path(args.output_dir)
    main_process = distributed_state().is_main_process  # under torchrun: one process prints and writes
    result = {}
    for name in args.sets:
        prompts = f"world-{name}"
        if args.prompt_seed:  # the scenes of another prompt seed, as a file
            prompts = out / f"{name}-seed{args.prompt_seed}.jsonl"
            out.mkdir(parents=True, exist_ok=True)
            rows = iter_prompt_set(name, args.num_prompts, seed=args.prompt_seed)
            # every process writes the same file; atomically, so none reads another's half-written one
            atomic_write_text(prompts, "".join(json.dumps({"id": i, **x}) + "\n" for i, x in enumerate(rows)))
        runs = {}
        for system, lift in systems.items():
            cfg = load_config(EvalConfig, None, {"prompts": str(prompts), "num_prompts": args.num_prompts,
                                                 "seeds": args.seeds, "rewards": [JUDGE], "lift": lift,
                                                 "lifted": args.stack and system != "base",
                                                 "lift_option": options if lift else [],
                                                 "output_dir": str(out / name / system)})
            runs[system] = evaluate(cfg)
        if main_process:  # the tables are the main process's
            result[name] = system_table(runs, "base", JUDGE)
            print(f"\nworld-{name}: {args.num_prompts} prompts x {args.seeds} seeds\n"
                  + format_system_table(result[name], "base"), flush=True)
    if not main_process:
        return
    record = {"title": args.title or f"sur_eval {' '.join(systems)}", "run": run_record(),
              "prompt_seed": args.prompt_seed, "num_prompts": args.num_prompts,
              "seeds": args.seeds, "judge": JUDGE, "gate": args.gate, "reads": args.reads, "stack": args.stack,
              "systems": {name: lift for name, lift in systems.items()}, "sets": result}
    for path in [out / "sur_eval.json", *([args.results] if args.results else [])]:
        atomic_write_json(path, record)


if __name__ == "__main__":
    main()
