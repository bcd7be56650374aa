"""Multi-process runs (`torchrun`, as `accelerate launch` starts them on GPUs) on 2 CPU processes with gloo give the
single-process result: eval scores and images and curate decisions bitwise, training weights within float tolerance."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(nproc: int, *args) -> subprocess.CompletedProcess:
    """`torchrun --nproc_per_node NPROC -m promptlift ARGS`, one thread per process, offline."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "promptlift", *map(str, args)]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def _rows(run: Path) -> list[dict]:
    rows = [json.loads(x) for x in (run / "scores.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "timings"} for r in rows]


def test_eval_on_two_processes_writes_the_one_process_run(tmp_path, tiny_pipeline_dirs, tiny_bundle_dir):
    args = ("eval", "--model", tiny_pipeline_dirs["sd1"], "--prompts", "world-literal", "--num_prompts", 5, "--seeds", 1,
            "--batch_size", 2, "--num_inference_steps", 2, "--rewards", "world-aesthetic",
            "--reward_option", f"world-aesthetic.bundle_dir={tiny_bundle_dir}", "--judge_bundle", tiny_bundle_dir)
    one = launch(1, *args, "--output_dir", tmp_path / "one")
    two = launch(2, *args, "--output_dir", tmp_path / "two")
    a, b = _rows(tmp_path / "one"), _rows(tmp_path / "two")
    assert len(a) == 5 and a == b  # 3 batches over 2 processes: the rows in job order, the scores to the bit
    for row in a:
        assert (tmp_path / "one" / row["image"]).read_bytes() == (tmp_path / "two" / row["image"]).read_bytes()
    assert two.stdout.count("run folder:") == 1 and one.stdout.count("run folder:") == 1  # one process reports


def test_curate_on_two_processes_makes_the_one_process_decisions(tmp_path, world_set, tiny_bundle_dir):
    args = ("curate", "--input", world_set, "--caption_column", "complex", "--num_keep", 3, "--batch_size", 2,
            "--reward_option", f"world-aesthetic-reward.bundle_dir={tiny_bundle_dir}",
            "--reward_option", f"world-clip.bundle_dir={tiny_bundle_dir}")
    launch(1, *args, "--output_dir", tmp_path / "one")
    launch(2, *args, "--output_dir", tmp_path / "two")
    decisions = [(tmp_path / run / "decisions.jsonl").read_text() for run in ("one", "two")]
    assert decisions[0] == decisions[1] and decisions[0].count('"kept": true') == 3
    assert not list(tmp_path.glob(".*scores*"))


# trainer: its own arguments ({model}, {data}, {prompts} and {bundle} filled in), on tiny components
TRAINERS = {
    "quality-tuning": ("--train_data_dir", "{data}", "--caption_column", "complex", "--use_lora", "--lora_rank", 4),
    "sur-adapter": ("--train_data_dir", "{data}", "--simple_column", "narrative", "--num_heads", 4),
    "textcraftor": ("--prompts", "{prompts}", "--reward", "world-aesthetic-reward:1", "--reward_option",
                    "world-aesthetic-reward.bundle_dir={bundle}", "--num_inference_steps", 3, "--grad_steps", 2,
                    "--switch_step", 1, "--guidance_scale", 2.0, "--train_batch_size", 1),
    "refiner": ("--train_data", "{data}", "--eval_max_new_tokens", 5, "--d_model", 32, "--num_decoder_layers", 2),
}


@pytest.mark.parametrize("trainer", list(TRAINERS))
def test_training_on_two_processes_is_one_process_with_twice_the_accumulation(tmp_path, trainer, tiny_pipeline_dirs,
                                                                              tiny_bundle_dir, world_set):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("two red boats at sunset\na white ball on the beach\nthree green trees at night\n")
    fill = {"data": world_set, "prompts": prompts, "bundle": tiny_bundle_dir}
    args = ("train", trainer, "--pretrained_model_name_or_path", tiny_pipeline_dirs["sd1"],
            "--eval_prompts", "literal", "--max_train_steps", 3,
            "--train_batch_size", 2, "--checkpointing_steps", 3, "--eval_steps", 3, "--num_eval_prompts", 2,
            "--eval_inference_steps", 2, "--lr_warmup_steps", 1, "--learning_rate", 1e-3, "--eval_judge", "world-aesthetic",
            "--reward_option", f"world-aesthetic.bundle_dir={tiny_bundle_dir}", "--judge_bundle", tiny_bundle_dir,
            *(str(a).format(**fill) for a in TRAINERS[trainer]))
    launch(1, *args, "--gradient_accumulation_steps", 2, "--output_dir", tmp_path / "one")
    two = launch(2, *args, "--gradient_accumulation_steps", 1, "--output_dir", tmp_path / "two")
    # the same micro-batches (process r takes micro-batch 2s + r), their gradients averaged across processes
    a, b = (load_file(tmp_path / run / "checkpoints" / "checkpoint-3" / "model.safetensors") for run in ("one", "two"))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)
    log = [json.loads(x) for x in (tmp_path / "two" / "logs.jsonl").read_text().splitlines()]
    assert sum("eval" in x for x in log) == 1  # evaluated (and written) once, by the main process
    assert len([x for x in two.stdout.splitlines() if str(tmp_path / "two") in x]) == 1  # one process reports
