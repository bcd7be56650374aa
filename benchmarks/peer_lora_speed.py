"""Training speed against the script most users start from: diffusers' `train_text_to_image_lora.py` (read from
../shared/peers and run unchanged through its run_peer.py, never copied here) beside `promptlift train
quality-tuning --use_lora`, on the same model, data, resolution, batch, rank, learning rate and threads.

    .venv/bin/python benchmarks/peer_lora_speed.py [--steps 50] [--short_steps 10] [--num_threads 2]

Each is run for `short_steps` and `steps`; per step = the difference of the two wall times over the steps between
(start-up, caching and the final evaluation cancel out, up to their jitter), end to end = the `steps` run, peak
memory = the run's largest resident set; written to --results with the run's date, commit and machine. promptlift
runs once first, unmeasured: its held-out check caches the base model's scores (by model, prompts, seeds and
settings) for the runs after it, as a user's second run finds them. The peer script
runs no validation (no --validation_prompt); nor does promptlift by default here (`--no-eval_at_end`, as a user who
wants the weights only runs it); `--eval_at_end` adds its final held-out check (64 images with the tuned model). Prints each as promptlift / peer. The goals: per step <= 1.0x, end to end
<= 1.5x, memory <= 1.1x.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from record import add_results_option, ratio, write_results  # benchmarks/record.py

ROOT = Path(__file__).resolve().parents[1]
PEERS = ROOT.parent / "shared" / "peers"
# the child runs the command and reports its peak resident set (KiB on Linux): one child per measurement
_MEASURE = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)")


def run(cmd: list[str], threads: int, log: Path) -> tuple[float, float]:
    """(wall seconds, peak resident GiB) of `cmd`, its output in `log`."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1"}
    t0 = time.perf_counter()
    with open(log, "w") as out:
        result = subprocess.run([sys.executable, "-c", _MEASURE, *cmd], env=env, stdout=subprocess.PIPE, stderr=out,
                                text=True)
    seconds = time.perf_counter() - t0
    if result.returncode:
        raise SystemExit(f"{cmd[0]} failed; see {log}")
    return seconds, int(result.stdout.strip().splitlines()[-1]) / 2**20


def peer_command(model: Path, data: Path, out: Path, steps: int, args) -> list[str]:
    return [sys.executable, str(PEERS / "run_peer.py"), str(PEERS / "diffusers" / "train_text_to_image_lora.py"),
            "--pretrained_model_name_or_path", str(model), "--train_data_dir", str(data), "--caption_column", "complex",
            "--resolution", str(args.resolution), "--train_batch_size", str(args.batch_size), "--max_train_steps", str(steps),
            "--rank", str(args.rank), "--learning_rate", "1e-4", "--lr_scheduler", "constant", "--seed", "0",
            "--dataloader_num_workers", "0", "--checkpointing_steps", "100000", "--output_dir", str(out)]


def promptlift_command(model: Path, data: Path, out: Path, steps: int, args) -> list[str]:
    return [sys.executable, "-m", "promptlift", "train", "quality-tuning", "--use_lora", "--model", str(model),
            "--train_data_dir", str(data), "--caption_column", "complex", "--train_batch_size", str(args.batch_size),
            "--max_train_steps", str(steps), "--lora_rank", str(args.rank), "--lora_alpha", str(args.rank),
            "--learning_rate", "1e-4", "--lr_scheduler", "constant", "--lr_warmup_steps", "0", "--seed", "0",
            "--num_threads", str(args.num_threads), "--checkpointing_steps", "100000", "--eval_steps", "100000",
            "--output_dir", str(out), *([] if args.eval_at_end else ["--no-eval_at_end"])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--short_steps", type=int, default=10)
    parser.add_argument("--num_threads", type=int, default=2)
    parser.add_argument("--num_scenes", type=int, default=256)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--eval_at_end", action="store_true", help="promptlift runs its final held-out check too")
    parser.add_argument("--root", type=Path, default=ROOT / "runs" / "peer-speed")
    add_results_option(parser, "peer_lora_speed")
    args = parser.parse_args()
    if not (PEERS / "run_peer.py").is_file():
        raise SystemExit(f"the peers' scripts are not at {PEERS}")
    from promptlift.pipeline import default_model_path
    from promptlift.world.config import DatasetConfig
    from promptlift.world.dataset import build_dataset

    data = args.root / f"data-{args.num_scenes}"
    if not (data / "metadata.jsonl").is_file():
        build_dataset(DatasetConfig(num_scenes=args.num_scenes, output_dir=data, size=args.resolution))
    model = default_model_path()
    os.environ["PROMPTLIFT_CACHE"] = str(args.root / "cache")  # its own cache: filled by the warm-up below
    run(promptlift_command(model, data, args.root / "warm-up", args.short_steps, args), args.num_threads,
        args.root / "warm-up.log")
    results = {}
    for name, command in (("peer", peer_command), ("promptlift", promptlift_command)):
        for steps in (args.short_steps, args.steps):
            out = args.root / f"{name}-{steps}"
            subprocess.run(["rm", "-rf", str(out)], check=True)
            seconds, gib = run(command(model, data, out, steps, args), args.num_threads, args.root / f"{name}-{steps}.log")
            results[name, steps] = seconds, gib
            print(f"{name:>10} {steps:>4} steps: {seconds:7.1f} s, peak resident {gib:.2f} GiB", flush=True)
    per_step = {name: (results[name, args.steps][0] - results[name, args.short_steps][0]) / (args.steps - args.short_steps)
                for name in ("peer", "promptlift")}
    ratios = [ratio("per step", per_step["promptlift"] / per_step["peer"], "<= 1.0x"),
              ratio("end to end", results["promptlift", args.steps][0] / results["peer", args.steps][0], "<= 1.5x"),
              ratio("peak memory", results["promptlift", args.steps][1] / results["peer", args.steps][1], "<= 1.1x")]
    print(f"per step: peer {per_step['peer']:.3f} s, promptlift {per_step['promptlift']:.3f} s")
    print(", ".join(f"{r['what']} {r['value']:.3f}x (goal {r['goal']})" for r in ratios), "(promptlift / peer)")
    write_results(args.results, "Training against diffusers' LoRA script", ratios,
                  settings={k: getattr(args, k) for k in ("steps", "short_steps", "num_threads", "num_scenes",
                                                          "resolution", "batch_size", "rank", "eval_at_end")},
                  runs=[{"system": name, "steps": steps, "seconds": round(seconds, 2), "peak_gib": round(gib, 3)}
                        for (name, steps), (seconds, gib) in results.items()],
                  per_step_seconds={k: round(v, 4) for k, v in per_step.items()})


if __name__ == "__main__":
    main()
