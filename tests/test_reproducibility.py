"""Every trainer is a function of its config and seed: a run, and a run that crashed after a checkpoint and was
resumed with `--resume_from_checkpoint latest`, end with bitwise-equal weights."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_quality_tuning import run_qt
from test_refiner import run_refiner
from test_sur_adapter_trainer import run_sur
from test_textcraftor import prompt_file, run_tc  # noqa: F401 (prompt_file is a fixture)

import promptlift.training.loop as loop

STEPS = ("--max_train_steps", 4, "--checkpointing_steps", 2, "--eval_steps", 2, "--seed", 3)
# trainer: (runner, the fixture its data comes from, extra arguments); each case starts trainable weights at random
TRAINERS = {
    "quality-tuning (LoRA)": (run_qt, "world_set", ("--use_lora", "--lora_rank", 4)),
    "quality-tuning (full)": (run_qt, "world_set", ()),
    "sur-adapter": (run_sur, "world_set", ()),
    "textcraftor (LoRA)": (run_tc, "prompt_file", ("--use_lora", "--lora_rank", 2, "--train_batch_size", 1)),
    "refiner": (run_refiner, "world_set", ()),
}


def _weights(run: Path) -> dict[str, torch.Tensor]:
    """The model weights of the run's last checkpoint (what accelerate saved for every prepared model)."""
    files = sorted((run / "checkpoints" / "checkpoint-4").glob("model*.safetensors"))
    assert files, f"no weights in {run}/checkpoints/checkpoint-4"
    return {f"{f.name}:{k}": v for f in files for k, v in load_file(f).items()}


@pytest.mark.parametrize("trainer", list(TRAINERS))
def test_a_run_and_a_crashed_resumed_run_end_bitwise_equal(trainer, tmp_path, request, monkeypatch, tiny_pipeline_dirs,
                                                            tiny_bundle_dir):
    runner, data, extra = TRAINERS[trainer]
    args = (tiny_pipeline_dirs["sd1"], request.getfixturevalue(data))

    straight = runner(*args, tmp_path / "a", tiny_bundle_dir, *extra, *STEPS)
    assert straight.exit_code == 0, straight.output

    real_step = loop._optimizer_step

    def crash_at_third_step(accelerator, cfg, model, optimizer, scheduler, params, loss_fn, batch_fn, step):
        if step == 2:  # after checkpoint-2 was written
            raise RuntimeError("killed")
        return real_step(accelerator, cfg, model, optimizer, scheduler, params, loss_fn, batch_fn, step)

    monkeypatch.setattr(loop, "_optimizer_step", crash_at_third_step)
    crashed = runner(*args, tmp_path / "b", tiny_bundle_dir, *extra, *STEPS)
    assert crashed.exit_code == 1 and "killed" in crashed.output
    monkeypatch.setattr(loop, "_optimizer_step", real_step)
    resumed = runner(*args, tmp_path / "b", tiny_bundle_dir, *extra, *STEPS, "--resume_from_checkpoint", "latest")
    assert resumed.exit_code == 0 and "resumed from" in resumed.output, resumed.output

    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f"{len(differ)} of {len(a)} tensors differ, e.g. {differ[:3]}"
