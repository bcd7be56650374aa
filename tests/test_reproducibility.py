"""Every trainer is a function of its config and seed: a run, and a run that was SIGKILLed after a checkpoint and
resumed with `--resume_from_checkpoint latest`, end with bitwise-equal weights."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file
from test_quality_tuning import run_qt
from test_refiner import run_refiner
from test_sur_adapter_trainer import run_sur
from test_textcraftor import prompt_file, run_tc  # noqa: F401 (prompt_file is a fixture)


STEPS = ("--max_train_steps", 4, "--checkpointing_steps", 2, "--eval_steps", 2, "--seed", 3)
# trainer: (runner, the fixture its data comes from, extra arguments); each case starts trainable weights at random
TRAINERS = {
    "quality-tuning (LoRA)": (run_qt, "world_set", ("--use_lora", "--lora_rank", 4)),
    "quality-tuning (full)": (run_qt, "world_set", ()),
    "sur-adapter": (run_sur, "world_set", ()),
    "textcraftor (LoRA)": (run_tc, "prompt_file", ("--use_lora", "--lora_rank", 2, "--train_batch_size", 1)),
    "refiner": (run_refiner, "world_set", ()),
}

# the trainer's command in a child process that SIGKILLs itself as its third optimizer step begins (after
# checkpoint-2 was written): no exception handler, atexit hook or flush runs, as when the machine takes it away
KILLED_AT_THIRD_STEP = """
import os, signal, sys
import promptlift.training.loop as loop
from promptlift.cli import cli
real_step = loop._optimizer_step
def step(*args):
    if args[-1] == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return real_step(*args)
loop._optimizer_step = step
cli(sys.argv[1:])
"""


def _run_killed(runner, *args) -> subprocess.CompletedProcess:
    """Run what `runner(*args)` would run, in a child process killed at its third step."""
    argv = []
    original = CliRunner.invoke
    CliRunner.invoke = lambda self, cli, arguments, **kw: argv.extend(arguments)
    try:
        runner(*args)
    finally:
        CliRunner.invoke = original
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    return subprocess.run([sys.executable, "-c", KILLED_AT_THIRD_STEP, *argv], capture_output=True, text=True, env=env,
                          timeout=600)


def _weights(run: Path, step: int = 4) -> dict[str, torch.Tensor]:
    """The model weights of the run's checkpoint `step` (what accelerate saved for every prepared model)."""
    files = sorted((run / "checkpoints" / f"checkpoint-{step}").glob("model*.safetensors"))
    assert files, f"no weights in {run}/checkpoints/checkpoint-{step}"
    return {f"{f.name}:{k}": v for f in files for k, v in load_file(f).items()}


@pytest.mark.parametrize("trainer", list(TRAINERS))
def test_a_run_and_a_killed_resumed_run_end_bitwise_equal(trainer, tmp_path, request, tiny_pipeline_dirs, tiny_bundle_dir):
    runner, data, extra = TRAINERS[trainer]
    args = (tiny_pipeline_dirs["sd1"], request.getfixturevalue(data))

    straight = runner(*args, tmp_path / "a", tiny_bundle_dir, *extra, *STEPS)
    assert straight.exit_code == 0, straight.output

    killed = _run_killed(runner, *args, tmp_path / "b", tiny_bundle_dir, *extra, *STEPS)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert (tmp_path / "b" / "checkpoints" / "checkpoint-2").is_dir()
    resumed = runner(*args, tmp_path / "b", tiny_bundle_dir, *extra, *STEPS, "--resume_from_checkpoint", "latest")
    assert resumed.exit_code == 0 and "resumed from" in resumed.output, resumed.output

    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f"{len(differ)} of {len(a)} tensors differ, e.g. {differ[:3]}"


# bf16 runs slowly on CPU: the default suite keeps two trainers (a LoRA over the UNet; an adapter before it), -m slow the rest
BF16_DEFAULT = ("quality-tuning (LoRA)", "sur-adapter")


@pytest.mark.parametrize("trainer", [t if t in BF16_DEFAULT else pytest.param(t, marks=pytest.mark.slow) for t in TRAINERS])
def test_every_trainer_trains_in_bf16_with_its_frozen_models_in_bf16(trainer, tmp_path, request, tiny_pipeline_dirs,
                                                                      tiny_bundle_dir):
    """`--mixed_precision bf16` (fp16 on a GPU alike): frozen models held in bf16, the loss and the held-out check
    autocast, the trained weights fp32 and finite."""
    runner, data, extra = TRAINERS[trainer]
    result = runner(tiny_pipeline_dirs["sd1"], request.getfixturevalue(data), tmp_path, tiny_bundle_dir, *extra,
                    "--max_train_steps", 2, "--checkpointing_steps", 2, "--eval_steps", 2, "--mixed_precision", "bf16")
    assert result.exit_code == 0, result.output
    weights = _weights(tmp_path, step=2)
    floats = [v for v in weights.values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in floats)
