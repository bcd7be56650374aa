"""The training loop every promptlift trainer shares, on Hugging Face accelerate.

One loop: gradient accumulation to an effective batch, mixed precision where the device supports it,
EMA, checkpoints every N steps (model, optimizer, LR scheduler, EMA, RNG states, step) written
atomically and pruned to the last k, exact resume, a guard that skips non-finite steps, a progress
bar and a JSONL metrics log. Data comes from `batch_fn(index)`, a pure function of the micro-batch
index, so the data position is the step and a resumed run sees exactly the batches it would have.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import broadcast_object_list, set_seed
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from tqdm.auto import tqdm

from ..runs import RunLock
from ..files import atomic_write_json, json_text, usual_permissions
from ..devices import launched_on_cpus
from .config import TrainConfig

__all__ = ["TrainConfig", "FitResult", "batch_seed", "fit", "find_checkpoint", "make_optimizer"]


def batch_seed(seed: int, index: int, stride: int = 1_000_003) -> int:
    """The seed of micro-batch `index` of a run seeded `seed`: what a batch draws (noise, timesteps, dropout, caption
    choices) is a function of its index, so a resumed run draws what the uninterrupted one did."""
    return seed * stride + index


@dataclass
class FitResult:
    """What `fit` leaves: the trained model (EMA weights copied in when used), the last step and metrics."""

    model: torch.nn.Module
    step: int
    metrics: dict = field(default_factory=dict)
    stopped_early: bool = False
    is_main_process: bool = True  # under a multi-process launch, only the main process writes the trainer's outputs


_CKPT = re.compile(r"^checkpoint-(\d+)$")


def make_optimizer(cfg: TrainConfig, params) -> torch.optim.Optimizer:
    """The optimizer `cfg.optimizer` names over `params`: torch's AdamW, or bitsandbytes' AdamW8bit (block-wise
    8-bit moments for tensors of 4096+ elements, the rest in fp32, as bitsandbytes does)."""
    if cfg.optimizer == "adamw_8bit":
        try:
            import bitsandbytes as bnb
        except ImportError as e:
            raise ValueError("`optimizer` adamw_8bit needs bitsandbytes: pip install 'promptlift[bnb]' (or use "
                             "`--optimizer adamw`).") from e
        return bnb.optim.AdamW8bit(params, lr=cfg.learning_rate, weight_decay=cfg.adam_weight_decay)
    return torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.adam_weight_decay)


def find_checkpoint(output_dir: Path, which: str) -> Path | None:
    """'latest' -> the newest checkpoint in `output_dir/checkpoints` (or None); else the given folder."""
    if which != "latest":
        path = Path(which)
        if not (path / "trainer_state.json").is_file():
            raise ValueError(f"`resume_from_checkpoint` {which!r} is not a checkpoint folder (no trainer_state.json).")
        return path
    root = Path(output_dir) / "checkpoints"
    found = sorted((int(m.group(1)), p) for p in root.glob("checkpoint-*") if (m := _CKPT.match(p.name))
                   and (p / "trainer_state.json").is_file()) if root.is_dir() else []
    return found[-1][1] if found else None


def _save_checkpoint(accelerator: Accelerator, cfg: TrainConfig, step: int, state: dict) -> Path:
    """Write checkpoint-{step} atomically (temp folder, then rename) and prune to the last k."""
    root = Path(cfg.output_dir) / "checkpoints"
    final = root / f"checkpoint-{step}"
    tmp = root / f".tmp-checkpoint-{step}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()  # every process has written its files (its RNG state) before the rename
    if accelerator.is_main_process:
        atomic_write_json(tmp / "trainer_state.json", {**state, "step": step, "num_processes": accelerator.num_processes})
        usual_permissions(tmp)
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        kept = sorted((int(m.group(1)), p) for p in root.glob("checkpoint-*") if (m := _CKPT.match(p.name)))
        for _, old in kept[: -cfg.checkpoints_total_limit]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def epoch_indices(i: int, n: int, batch: int, seed: int) -> list[int]:
    """Sample indices of micro-batch i over a dataset of n: epochs of seeded permutations, a pure function of i
    (so a resumed run draws exactly the batches an uninterrupted one would)."""
    out = []
    for pos in range(i * batch, (i + 1) * batch):
        epoch, k = divmod(pos, n)
        out.append(int(np.random.default_rng([seed, epoch]).permutation(n)[k]))
    return out


def _log(path: Path, record: dict, accelerator: Accelerator | None = None) -> None:
    """Append `record` to logs.jsonl; with a tracker (TensorBoard) also log its numbers, nested keys joined by '/'."""
    with open(path, "a") as f:
        f.write(json_text(record) + "\n")
    if accelerator is not None and accelerator.trackers:
        def flat(d, prefix=""):
            for k, v in d.items():
                if isinstance(v, dict):
                    yield from flat(v, f"{prefix}{k}/")
                elif isinstance(v, (int, float)) and not isinstance(v, bool) and k != "step":
                    yield f"{prefix}{k}", v

        accelerator.log(dict(flat(record)), step=record.get("step"))


def _make_accelerator(cfg: TrainConfig, out: Path, desc: str) -> Accelerator:
    tracking = cfg.report_to == "tensorboard"
    if tracking:
        import importlib.util

        if importlib.util.find_spec("tensorboard") is None and importlib.util.find_spec("tensorboardX") is None:
            raise ImportError("`report_to tensorboard` needs TensorBoard: pip install tensorboard")
    # each run its own precision: a process that trains twice (the Python API, the tests) would get the first run's
    # (the process group, PartialState, is kept)
    AcceleratorState._reset_state()
    # a step is an optimizer step whatever the process count (accelerate would step the LR schedule once per process)
    accelerator = Accelerator(cpu=launched_on_cpus(), gradient_accumulation_steps=cfg.gradient_accumulation_steps,
                              step_scheduler_with_optimizer=False,
                              mixed_precision=cfg.mixed_precision, log_with="tensorboard" if tracking else None,
                              project_dir=str(out / "tensorboard") if tracking else None)
    if tracking:
        accelerator.init_trackers(desc)
    return accelerator


def fit(
    cfg: TrainConfig,
    model: torch.nn.Module,
    loss_fn: Callable[[torch.nn.Module, Any], tuple[torch.Tensor, dict]],
    batch_fn: Callable[[int], Any],
    *,
    params: list[torch.nn.Parameter] | None = None,
    eval_fn: Callable[[torch.nn.Module, int], dict] | None = None,
    stop_fn: Callable[[dict], bool] | None = None,
    accelerator: Accelerator | None = None,
    desc: str = "train",
) -> FitResult:
    """Train `model` on `loss_fn(model, batch_fn(i))` for `cfg.max_train_steps` optimizer steps.

    Args:
        params: the trainable parameters (default: those of `model` that require grad).
        eval_fn: called every `eval_steps` and at the end with the (EMA) model; returns metrics.
        stop_fn: given the eval metrics, True stops training early (e.g. a measured quality gate).
    """
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    accelerator = accelerator or _make_accelerator(cfg, out, desc)
    lock = RunLock(out) if accelerator.is_main_process else None  # one launch per run folder
    set_seed(cfg.seed)
    params = params if params is not None else [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(cfg, params)
    scheduler = get_scheduler(cfg.lr_scheduler, optimizer, num_warmup_steps=cfg.lr_warmup_steps,
                              num_training_steps=cfg.max_train_steps)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    frozen = _frozen_names(accelerator.unwrap_model(model), params)
    if frozen:  # a LoRA over a 2.6B-parameter UNet: checkpoints hold what trains, not the frozen base again
        accelerator.register_save_state_pre_hook(lambda models, weights, _: [w.pop(k, None) for w in weights for k in frozen])
    ema = EMAModel(params, decay=cfg.ema_decay) if cfg.use_ema else None
    if ema is not None:
        accelerator.register_for_checkpointing(ema)

    step, state = _resume(accelerator, cfg, out, accelerator.unwrap_model(model), frozen)

    metrics: dict = {}
    stopped = False
    log_path = out / "logs.jsonl"
    bar = tqdm(total=cfg.max_train_steps, initial=step, desc=desc, disable=not accelerator.is_main_process)
    t0 = time.perf_counter()
    while step < cfg.max_train_steps:
        loss, logs, skipped = _optimizer_step(accelerator, cfg, model, optimizer, scheduler, params, loss_fn,
                                              batch_fn, step)
        step += 1
        _track_nonfinite(state, skipped, cfg, step, log_path)
        if not skipped and ema is not None:
            ema.step(params)
        bar.update(1)
        if step % cfg.logging_steps == 0 and accelerator.is_main_process:
            _log_step(accelerator, bar, log_path, step, loss, logs, scheduler.get_last_lr()[0], time.perf_counter() - t0)
        last = step == cfg.max_train_steps
        evaluating = eval_fn is not None and ((cfg.eval_steps and step % cfg.eval_steps == 0) or last and cfg.eval_at_end)
        if evaluating or step % cfg.checkpointing_steps == 0 or last:
            _require_finite(params, step, out)  # nothing non-finite reaches an evaluation's saved weights or a checkpoint
        if evaluating:
            metrics, stopped = _held_out_check(accelerator, eval_fn, stop_fn, model, ema, params, step, log_path)
        if step % cfg.checkpointing_steps == 0 or last or stopped:
            _save_checkpoint(accelerator, cfg, step, state)
        if stopped:
            break
    bar.close()
    if lock is not None:
        lock.release()
    accelerator.end_training()
    model = accelerator.unwrap_model(model)
    if ema is not None:
        ema.copy_to(params)
    return FitResult(model=model, step=step, metrics=metrics, stopped_early=stopped,
                     is_main_process=accelerator.is_main_process)


def _log_step(accelerator, bar, log_path: Path, step: int, loss: torch.Tensor, logs: dict, lr: float,
              elapsed_s: float) -> None:
    """One optimizer step's line in logs.jsonl (and TensorBoard), its loss on the progress bar."""
    record = {"step": step, "loss": float(loss.detach()), "lr": lr, "elapsed_s": round(elapsed_s, 1),
              **{k: float(v) for k, v in logs.items()}}
    bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
    _log(log_path, record, accelerator)


def _held_out_check(accelerator, eval_fn, stop_fn, model, ema, params, step: int, log_path: Path) -> tuple[dict, bool]:
    """(metrics, stop?) of the held-out check, run on the main process (it writes what the evaluation keeps); every
    process learns the outcome."""
    metrics, stopped = {}, False
    if accelerator.is_main_process:
        metrics = _evaluate(eval_fn, accelerator.unwrap_model(model), ema, params, step)
        _log(log_path, {"step": step, "eval": metrics}, accelerator)
        accelerator.print(f"step {step}: {metrics}")
        stopped = bool(stop_fn and stop_fn(metrics))
    if accelerator.num_processes > 1:
        metrics, stopped = broadcast_object_list([metrics, stopped])
    return metrics, stopped


def _frozen_names(module: torch.nn.Module, params: list[torch.nn.Parameter]) -> set[str]:
    """Names of `module`'s parameters outside `params` (the frozen base of a LoRA): checkpoints leave them out."""
    trained = {id(p) for p in params}
    return {name for name, p in module.named_parameters() if id(p) not in trained}


def _check_saved_weights(ckpt: Path, module: torch.nn.Module, frozen: set[str]) -> None:
    """Every trained weight of `module` is in the checkpoint (which leaves the `frozen` ones out)."""
    from safetensors import safe_open

    with safe_open(str(ckpt / "model.safetensors"), framework="pt") as f:
        missing = set(module.state_dict()) - frozen - set(f.keys())
    if missing:
        raise ValueError(f"it lacks {len(missing)} trained weights (e.g. {sorted(missing)[0]!r}): it was written by "
                         "another model or LoRA")


def _resume(accelerator: Accelerator, cfg: TrainConfig, out: Path, module: torch.nn.Module,
            frozen: set[str] = frozenset()) -> tuple[int, dict]:
    """(step, trainer state) of the checkpoint to resume from, restoring model/optimizer/scheduler/EMA/RNG; else 0.
    A checkpoint without the `frozen` weights loads over the model's own."""
    state = {"nonfinite_in_a_row": 0, "nonfinite_total": 0}
    ckpt = find_checkpoint(out, cfg.resume_from_checkpoint) if cfg.resume_from_checkpoint else None
    if ckpt is None:
        return 0, state
    try:
        state = json.loads((ckpt / "trainer_state.json").read_text())
        step = int(state.pop("step"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"checkpoint {str(ckpt)!r} is damaged (its trainer_state.json cannot be read: {e}); delete that "
                         "folder to resume from the one before it, or pass `--resume_from_checkpoint` another one.") from None
    saved = state.pop("num_processes", accelerator.num_processes)
    if saved != accelerator.num_processes:  # each process draws its own micro-batches: the run would not continue
        raise ValueError(f"checkpoint {str(ckpt)!r} was written by {saved} process(es), and this run has "
                         f"{accelerator.num_processes}; resume it with `--num_processes {saved}` (the batches of a run "
                         "depend on its process count), or start a new output_dir.")
    try:
        if frozen:
            _check_saved_weights(ckpt, module, frozen)
        accelerator.load_state(str(ckpt), strict=not frozen)
    except Exception as e:  # truncated or foreign weight files
        raise ValueError(f"checkpoint {str(ckpt)!r} is damaged ({type(e).__name__}: {e}); delete that folder to resume "
                         "from the one before it, or pass `--resume_from_checkpoint` another one.") from None
    accelerator.print(f"resumed from {ckpt} at step {step}")
    return step, state


def _optimizer_step(accelerator, cfg: TrainConfig, model, optimizer, scheduler, params, loss_fn, batch_fn, step: int):
    """One optimizer step over `gradient_accumulation_steps` micro-batches; a non-finite loss skips the update.

    Micro-batch `(step * accum + micro) * P + rank` on process `rank` of P: one process with accumulation 2P makes the
    batches of P processes with accumulation 2 (the same seeds), and its result up to float rounding."""
    model.train()
    module = accelerator.unwrap_model(model)  # trainers call its methods and the pipeline's modules: no DDP forward
    accum = cfg.gradient_accumulation_steps
    skipped = False
    for micro in range(accum):
        with accelerator.accumulate(model):
            index = (step * accum + micro) * accelerator.num_processes + accelerator.process_index
            # the model's own randomness (dropout) is a function of the micro-batch too: the same whatever the process
            # count, and on resume
            torch.manual_seed(batch_seed(cfg.seed, index + 1, stride=1_000_033))
            with accelerator.autocast():  # `mixed_precision` covers the whole loss: the frozen UNet and encoders too
                loss, logs = loss_fn(module, batch_fn(index))
            if not torch.isfinite(loss):
                skipped = True
            else:
                accelerator.backward(loss)
            if accelerator.sync_gradients:
                skipped = _average_gradients(accelerator, params, skipped)
                if cfg.max_grad_norm > 0 and not skipped:
                    norm = accelerator.clip_grad_norm_(params, cfg.max_grad_norm)
                    skipped = not torch.isfinite(torch.as_tensor(norm)).item()  # an inf/NaN gradient skips the update too
            if not skipped:
                optimizer.step()
                if accelerator.sync_gradients:
                    scheduler.step()
            optimizer.zero_grad(set_to_none=True)
    return loss, logs, skipped


def _average_gradients(accelerator: Accelerator, params, skipped: bool) -> bool:
    """Average the gradients over the processes (in one all-reduce; a parameter no process gave a gradient keeps
    none), and return whether any process skipped this step (then all do)."""
    if accelerator.num_processes == 1:
        return skipped
    import torch.distributed as dist

    has = torch.tensor([float(skipped)] + [float(p.grad is not None) for p in params], device=accelerator.device)
    dist.all_reduce(has, op=dist.ReduceOp.MAX)
    used = [p for p, h in zip(params, has[1:].tolist()) if h]
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in used]
    if grads:
        flat = torch.cat([g.reshape(-1) for g in grads]) / accelerator.num_processes
        dist.all_reduce(flat)
        for p, chunk in zip(used, flat.split([g.numel() for g in grads])):
            p.grad = chunk.view_as(p).clone()
    return bool(has[0].item())


def _require_finite(params, step: int, out: Path) -> None:
    """Stop, saving nothing, when a weight is no longer finite (a learning rate far too high can do that on finite
    losses and gradients)."""
    bad = sum(int(not torch.isfinite(p).all()) for p in params)
    if bad:
        raise RuntimeError(f"{bad} trainable tensor(s) hold NaN or inf after step {step}; nothing was saved. Lower "
                           f"`learning_rate` (or `max_grad_norm`) and resume from the last checkpoint in {out}/checkpoints.")


def _track_nonfinite(state: dict, skipped: bool, cfg: TrainConfig, step: int, log_path: Path) -> None:
    """Count skipped steps; log each, and stop after `max_nonfinite_steps` in a row."""
    if not skipped:
        state["nonfinite_in_a_row"] = 0
        return
    state["nonfinite_in_a_row"] += 1
    state["nonfinite_total"] += 1
    _log(log_path, {"step": step, "event": "nonfinite_loss_skipped"})
    if state["nonfinite_in_a_row"] >= cfg.max_nonfinite_steps:
        raise RuntimeError(f"{cfg.max_nonfinite_steps} non-finite losses in a row at step {step}; "
                           "lower `learning_rate` or check the data.")


@torch.no_grad()
def _evaluate(eval_fn, model, ema, params, step: int) -> dict:
    """Run eval_fn with the EMA weights swapped in (when used), then restore the training weights."""
    model.eval()
    if ema is None:
        return eval_fn(model, step)
    ema.store(params)
    ema.copy_to(params)
    try:
        return eval_fn(model, step)
    finally:
        ema.restore(params)
