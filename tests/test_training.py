"""The shared training loop: learning, exact resume after a crash, the non-finite guard, checkpoints."""

import json

import pytest
import torch

from promptlift.training import TrainConfig, find_checkpoint, fit


def toy_problem(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    w = torch.tensor([[1.0, -2.0, 0.5, 3.0]])

    def batch_fn(i):
        g = torch.Generator().manual_seed(1000 + i)
        x = torch.randn(8, 4, generator=g)
        return x, x @ w.t()

    def loss_fn(m, batch):
        x, y = batch
        return torch.nn.functional.mse_loss(m(x), y), {}

    return model, loss_fn, batch_fn


def cfg(tmp_path, **kw):
    base = dict(output_dir=tmp_path, max_train_steps=12, train_batch_size=8, learning_rate=1e-2, lr_warmup_steps=2,
                checkpointing_steps=4, logging_steps=1, use_ema=True, ema_decay=0.9, seed=3)
    return TrainConfig(**{**base, **kw})


def test_fit_learns_and_logs(tmp_path):
    model, loss_fn, batch_fn = toy_problem()
    before = loss_fn(model, batch_fn(999))[0].item()
    result = fit(cfg(tmp_path, max_train_steps=60, use_ema=False), model, loss_fn, batch_fn)
    assert result.step == 60
    assert loss_fn(result.model, batch_fn(999))[0].item() < 0.5 * before
    logs = [json.loads(x) for x in (tmp_path / "logs.jsonl").read_text().splitlines()]
    assert logs[-1]["step"] == 60 and "lr" in logs[-1]


def test_tensorboard_logging(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    model, loss_fn, batch_fn = toy_problem()
    fit(cfg(tmp_path, max_train_steps=4, report_to="tensorboard"), model, loss_fn, batch_fn,
        eval_fn=lambda m, step: {"score": float(step)})
    events = EventAccumulator(str(next((tmp_path / "tensorboard").rglob("events.out.tfevents.*")).parent)).Reload()
    assert {"loss", "lr", "eval/score"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("loss")] == [1, 2, 3, 4]


def test_resume_after_crash_is_bitwise_identical(tmp_path):
    model, loss_fn, batch_fn = toy_problem()
    straight = fit(cfg(tmp_path / "a", gradient_accumulation_steps=2), model, loss_fn, batch_fn).model

    model, loss_fn, batch_fn = toy_problem()

    def crashing(i):
        if i == 2 * 7:  # micro-batch of step 8, after checkpoint-4, before checkpoint-8
            raise KeyboardInterrupt
        return batch_fn(i)

    with pytest.raises(KeyboardInterrupt):
        fit(cfg(tmp_path / "b", gradient_accumulation_steps=2), model, loss_fn, crashing)
    assert find_checkpoint(tmp_path / "b", "latest").name == "checkpoint-4"
    model, loss_fn, batch_fn = toy_problem(seed=123)  # other init: everything must come from the checkpoint
    resumed = fit(cfg(tmp_path / "b", gradient_accumulation_steps=2, resume_from_checkpoint="latest"),
                  model, loss_fn, batch_fn).model
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)


def test_checkpoints_are_pruned_and_complete(tmp_path):
    model, loss_fn, batch_fn = toy_problem()
    fit(cfg(tmp_path, checkpoints_total_limit=2), model, loss_fn, batch_fn)
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["checkpoint-12", "checkpoint-8"]
    assert json.loads((tmp_path / "checkpoints" / "checkpoint-12" / "trainer_state.json").read_text())["step"] == 12


def test_nonfinite_losses_are_skipped_then_stop(tmp_path):
    model, loss_fn, batch_fn = toy_problem()
    bad_steps = {3, 4}

    def sometimes_nan(m, batch):
        loss, logs = loss_fn(m, batch)
        return (loss * float("nan"), logs) if batch[0][0, 0].item() in bad else (loss, logs)

    bad = {batch_fn(i)[0][0, 0].item() for i in bad_steps}
    result = fit(cfg(tmp_path / "a"), model, sometimes_nan, batch_fn)
    events = [json.loads(x) for x in (tmp_path / "a" / "logs.jsonl").read_text().splitlines()]
    assert [e["step"] for e in events if e.get("event") == "nonfinite_loss_skipped"] == [4, 5]
    assert all(torch.isfinite(p).all() for p in result.model.parameters())

    model, loss_fn, batch_fn = toy_problem()
    with pytest.raises(RuntimeError, match="3 non-finite losses in a row"):
        fit(cfg(tmp_path / "b", max_nonfinite_steps=3), model, lambda m, b: (loss_fn(m, b)[0] * float("nan"), {}), batch_fn)


def test_nonfinite_weights_never_reach_a_checkpoint(tmp_path):
    """A weight goes non-finite mid-run (as an overflowing update leaves it): the loop stops before the checkpoint
    of step 4 and saves nothing."""
    model, loss_fn, batch_fn = toy_problem()

    def corrupting(i):
        if i == 2:
            with torch.no_grad():
                model[0].weight[0, 0] = float("inf")
        return batch_fn(i)

    with pytest.raises(RuntimeError, match="hold NaN or inf after step 4; nothing was saved"):
        fit(cfg(tmp_path, use_ema=False), model, loss_fn, corrupting)
    assert find_checkpoint(tmp_path, "latest") is None


def test_bad_config_and_bad_resume_path(tmp_path):
    with pytest.raises(ValueError, match="`max_train_steps` must be >= 1"):
        TrainConfig(max_train_steps=0)
    with pytest.raises(ValueError, match="is not a checkpoint folder"):
        find_checkpoint(tmp_path, str(tmp_path / "nope"))
    assert find_checkpoint(tmp_path, "latest") is None


SCRIPT = """
import sys, time, torch
sys.path.insert(0, {tests!r})
from test_training import toy_problem, cfg
from promptlift.training import fit
from pathlib import Path
model, loss_fn, batch_fn = toy_problem(seed=int(sys.argv[2]))
slow = float(sys.argv[3])
def slow_batches(i):
    time.sleep(slow)
    return batch_fn(i)
resume = "latest" if sys.argv[4] == "resume" else None
result = fit(cfg(Path(sys.argv[1]), max_train_steps=40, checkpointing_steps=5, gradient_accumulation_steps=2,
                 resume_from_checkpoint=resume), model, loss_fn, slow_batches)
torch.save(result.model.state_dict(), Path(sys.argv[1]) / "final.pt")
"""


def test_sigkill_then_resume_is_bitwise_identical(tmp_path):
    """A run killed with SIGKILL mid-way and resumed ends with exactly the weights of an uninterrupted run."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    script = tmp_path / "train.py"
    script.write_text(SCRIPT.format(tests=str(Path(__file__).parent)))
    env = {**os.environ, "PYTHONHASHSEED": "0"}

    def launch(out, seed, slow, mode):
        return subprocess.Popen([sys.executable, str(script), str(out), str(seed), str(slow), mode], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    assert launch(tmp_path / "a", 0, 0.0, "fresh").wait(timeout=300) == 0
    victim = launch(tmp_path / "b", 0, 0.05, "fresh")
    deadline = time.time() + 120
    while not (tmp_path / "b" / "checkpoints" / "checkpoint-10").is_dir():
        assert time.time() < deadline and victim.poll() is None
        time.sleep(0.05)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert not (tmp_path / "b" / "final.pt").exists()
    assert launch(tmp_path / "b", 123, 0.0, "resume").wait(timeout=300) == 0  # other init: all state from disk
    a = torch.load(tmp_path / "a" / "final.pt")
    b = torch.load(tmp_path / "b" / "final.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_partly_frozen_model_checkpoints_only_what_trains_and_resumes_bitwise(tmp_path):
    """A LoRA's checkpoint must not hold the frozen base again (at SDXL size that is 10 GB a checkpoint)."""
    from safetensors import safe_open

    def problem(seed):
        model, loss_fn, batch_fn = toy_problem(seed)
        model[0].requires_grad_(False)  # the frozen base; model[2] trains
        return model, loss_fn, batch_fn

    model, loss_fn, batch_fn = problem(0)
    straight = fit(cfg(tmp_path / "a", max_train_steps=8), model, loss_fn, batch_fn).model
    with safe_open(str(find_checkpoint(tmp_path / "a", "latest") / "model.safetensors"), framework="pt") as f:
        assert set(f.keys()) == {"2.weight", "2.bias"}
    model, loss_fn, batch_fn = problem(0)

    def crashing(i):
        if i == 5:  # step 6, after checkpoint-4
            raise KeyboardInterrupt
        return batch_fn(i)

    with pytest.raises(KeyboardInterrupt):
        fit(cfg(tmp_path / "b", max_train_steps=8), model, loss_fn, crashing)
    model, loss_fn, batch_fn = problem(0)  # the same frozen base, as a trainer reloads it
    resumed = fit(cfg(tmp_path / "b", max_train_steps=8, resume_from_checkpoint="latest"), model, loss_fn, batch_fn).model
    assert all(torch.equal(a, b) for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()))
    model, loss_fn, batch_fn = problem(0)
    model[0].requires_grad_(True)
    model[2].requires_grad_(False)  # another set of trained weights: the checkpoint lacks them
    with pytest.raises(ValueError, match="is damaged .*lacks 2 trained weights"):
        fit(cfg(tmp_path / "b", max_train_steps=12, resume_from_checkpoint="latest"), model, loss_fn, batch_fn)


def test_mixed_precision_autocasts_the_whole_loss(tmp_path):
    """Trainers call frozen models (the UNet) inside `loss_fn`, not the prepared model's forward: all of it autocasts."""
    model, loss_fn, batch_fn = toy_problem()
    frozen = torch.nn.Linear(4, 4).requires_grad_(False)  # a model the loss reads that fit was not given
    seen = []

    def loss_through_frozen(m, batch):
        x, y = batch
        h = frozen(x)
        seen.append(h.dtype)
        return torch.nn.functional.mse_loss(m(h).float(), y), {}

    fit(cfg(tmp_path, max_train_steps=2, mixed_precision="bf16"), model, loss_through_frozen, batch_fn)
    assert seen == [torch.bfloat16] * 2
    assert all(p.dtype == torch.float32 for p in model.parameters())  # the trained weights stay fp32


@pytest.mark.parametrize("damage", ["state", "weights"])
def test_a_damaged_checkpoint_is_named_with_the_fix(tmp_path, damage):
    model, loss_fn, batch_fn = toy_problem()
    fit(cfg(tmp_path, max_train_steps=4), model, loss_fn, batch_fn)
    ckpt = find_checkpoint(tmp_path, "latest")
    if damage == "state":
        (ckpt / "trainer_state.json").write_text("{not json")
    else:
        weights = next(ckpt.glob("*.safetensors"))
        weights.write_bytes(weights.read_bytes()[:100])
    model, loss_fn, batch_fn = toy_problem()
    with pytest.raises(ValueError, match="is damaged .*delete that folder"):
        fit(cfg(tmp_path, max_train_steps=8, resume_from_checkpoint="latest"), model, loss_fn, batch_fn)


def test_resuming_with_another_process_count_is_refused(tmp_path):
    model, loss_fn, batch_fn = toy_problem()
    fit(cfg(tmp_path, max_train_steps=4), model, loss_fn, batch_fn)
    ckpt = find_checkpoint(tmp_path, "latest")
    state = json.loads((ckpt / "trainer_state.json").read_text())
    assert state["num_processes"] == 1
    (ckpt / "trainer_state.json").write_text(json.dumps({**state, "num_processes": 2}))
    model, loss_fn, batch_fn = toy_problem()
    with pytest.raises(ValueError, match="written by 2 process\\(es\\), and this run has 1"):
        fit(cfg(tmp_path, max_train_steps=8, resume_from_checkpoint="latest"), model, loss_fn, batch_fn)


def test_8bit_adamw_trains_and_checkpoints_8bit_moments(tmp_path):
    pytest.importorskip("bitsandbytes")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.Tanh(), torch.nn.Linear(128, 1))  # 8192 weights: 8-bit
    w = torch.randn(1, 64)

    def batch_fn(i):
        x = torch.randn(16, 64, generator=torch.Generator().manual_seed(i))
        return x, torch.tanh(x @ w.t())

    def loss_fn(m, batch):
        return torch.nn.functional.mse_loss(m(batch[0]), batch[1]), {}

    before = loss_fn(model, batch_fn(999))[0].item()
    result = fit(cfg(tmp_path, max_train_steps=40, use_ema=False, optimizer="adamw_8bit", learning_rate=3e-3,
                     checkpointing_steps=40), model, loss_fn, batch_fn)
    assert loss_fn(result.model, batch_fn(999))[0].item() < 0.7 * before
    state = torch.load(tmp_path / "checkpoints" / "checkpoint-40" / "optimizer.bin", weights_only=False)["state"]

    def moments(tree):  # bitsandbytes nests its quantised state one level down
        for key, value in tree.items():
            if isinstance(value, dict):
                yield from moments(value)
            elif key in ("state1", "state2"):
                yield value

    big = list(moments(state[0]))  # the 128 x 64 weight: both moments in 8 bits, 1 byte per element each
    assert len(big) == 2 and all(m.dtype == torch.uint8 and m.numel() == 8192 for m in big)


def test_8bit_adamw_without_bitsandbytes_is_refused_with_the_fix(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # as if not installed
    model, loss_fn, batch_fn = toy_problem()
    with pytest.raises(ValueError, match=r"pip install 'promptlift\[bnb\]'"):
        fit(cfg(tmp_path, optimizer="adamw_8bit"), model, loss_fn, batch_fn)
    assert not (tmp_path / "checkpoints").exists()


def test_accelerates_configured_precision_is_the_default_unless_given(monkeypatch, tmp_path):
    from promptlift.config import load_config

    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")  # what `accelerate launch` passes from `accelerate config`
    assert TrainConfig(output_dir=tmp_path).mixed_precision == "bf16"
    assert load_config(TrainConfig, None, {"mixed_precision": "no"}).mixed_precision == "no"
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION")
    assert TrainConfig(output_dir=tmp_path).mixed_precision == "no"
    with pytest.raises(ValueError, match="mixed_precision"):
        load_config(TrainConfig, None, {"mixed_precision": "fp8"})


def test_a_held_out_check_that_loses_content_never_becomes_best(tmp_path):
    """Every method's best/ follows one rule (`best_score`), kept by the trainer base every method derives from
    (`MethodTrainer.train`): the first check loses content (all attributes right on half the prompts, the base model on
    all) and wins most, yet writes no best/; a later one that keeps content and wins less becomes best; one that wins
    still less does not replace it; final/ holds the last weights either way; the rule's threshold is the config's."""
    from promptlift.methods.common import BestKeeper, MethodTrainer, best_score
    from promptlift.methods.textcraftor.config import TextCraftorConfig

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("two red boats at sunset\n")
    cfg = TextCraftorConfig(output_dir=tmp_path / "run", prompts=str(prompts), max_train_steps=12, eval_steps=4,
                            train_batch_size=8, learning_rate=1e-2, lr_warmup_steps=2, checkpointing_steps=4)
    assert cfg.max_semantic_drop == 0.01 and cfg.best_metric == "win_rate_vs_base"  # on the embedded model
    checks = [{"win_rate_vs_base": 0.9, "judge_mean": 5.0, "semantic_all": 0.5, "semantic_all_base": 1.0},
              {"win_rate_vs_base": 0.6, "judge_mean": 4.0, "semantic_all": 0.995, "semantic_all_base": 1.0},
              {"win_rate_vs_base": 0.5, "judge_mean": 6.0, "semantic_all": 1.0, "semantic_all_base": 1.0}]
    saved = {}

    class Scripted(MethodTrainer):
        method = "toy"

        def __init__(self, cfg):
            super().__init__(cfg, pipe=None)
            self.model, self.loss, self.batch = toy_problem()

        def evaluate(self, model, step):
            if step == 8:  # the content-losing first check wrote nothing
                assert not (tmp_path / "run" / "best").exists()
            return checks[step // 4 - 1]

        def save(self, model, folder, step=None):
            saved[step] = {k: v.clone() for k, v in model.state_dict().items()}
            folder.mkdir(parents=True, exist_ok=True)
            torch.save(model.state_dict(), folder / "weights.pt")

    assert best_score(checks[0], cfg) is None
    assert Scripted(cfg).train() == tmp_path / "run"
    assert sorted(saved, key=str) == [8, None]  # best/ from the second check, final/ after the last step
    assert json.loads((tmp_path / "run" / "best" / "eval.json").read_text())["step"] == 8
    best = torch.load(tmp_path / "run" / "best" / "weights.pt")
    assert all(torch.equal(best[k], saved[8][k]) for k in best)
    assert not all(torch.equal(best[k], saved[None][k]) for k in best)  # final/ holds the last weights
    assert [c["step"] for c in json.loads((tmp_path / "run" / "eval_history.json").read_text())] == [4, 8, 12]
    cfg.max_semantic_drop = 0.6  # a looser threshold keeps the first check: it wins most
    assert best_score(checks[0], cfg) == [0.9, 5.0]
    resumed = BestKeeper(tmp_path / "run", cfg)  # a resumed run competes with the best its first part saved
    assert resumed.best == [0.6, 4.0] and not resumed.keep(13, checks[2], lambda folder: saved.setdefault(13, None))
