"""`promptlift eval`: generate with fixed seeds, score with rewards and judges, summarise, report.

A run folder holds config.json, images/, scores.jsonl (one line per image, appended as it goes; a judge's
per-image details under "details"), judges.json (the models a judge scored with), summary.json and report.html. An
interrupted run resumes without redoing finished images; nothing is held in memory beyond one batch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import re
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from accelerate.utils import gather_object
from tqdm.auto import tqdm

from ..config import to_dict
from ..data.prompt_sets import load_prompt_set
from ..generation import generate_images, load_sampling
from ..pipeline import check_prompts, parse_lift_options, rewrite_prompts
from ..profiles import content_profile
from ..rewards import check_rewards, load_reward, parse_reward_options
from ..stats import bootstrap_mean
from ..runs import RunLock
from ..files import atomic_path, atomic_write_json, atomic_write_text, ensure_output_dir, json_text
from ..devices import distributed_state
from ..images import images_to_tensor
from .config import EvalConfig

__all__ = ["EvalConfig", "evaluate", "read_scores", "summarise"]
JUDGES_FILE = "judges.json"  # {reward: the models and rules it judged with}, for judges that name theirs
# Settings that change the images or their scores: a run folder resumes only with the same values.
_RUN_KEYS = ("model", "lift", "lift_option", "num_inference_steps", "guidance_scale", "height", "width", "negative_prompt",
             "on_long_prompt", "prompts", "prompts_subset", "rewards", "reward_option", "judge_bundle")


def _check_resume(out: Path, settings: dict, overwrite: bool, clear: bool = True) -> None:
    """A run folder holding a different run is an error, not something to mix into (or, with `overwrite`, emptied
    when `clear`: by the one process that writes)."""
    saved = out / "config.json"
    if not saved.is_file() or not read_scores(out):  # no finished image: nothing to resume or to protect
        return
    old = json.loads(saved.read_text())
    keys = (*_RUN_KEYS, "prompts_sha256") if "prompts_sha256" in old else _RUN_KEYS  # runs before the fingerprint
    diff = [k for k in keys if _setting(old, k) != _setting(settings, k)]
    if diff and overwrite and clear:
        for name in ("scores.jsonl", "summary.json", "report.html", "config.json", JUDGES_FILE):
            (out / name).unlink(missing_ok=True)
        shutil.rmtree(out / "images", ignore_errors=True)
    elif diff and not overwrite:
        what = ", ".join("the prompts' text" if k == "prompts_sha256" else k for k in diff)
        raise ValueError(f"`output_dir` {str(out)!r} holds a run made from other settings ({what}); choose a new "
                         "output_dir, pass `--overwrite` to replace that run, or repeat its settings to resume it.")


def _setting(settings: dict, key: str):
    """A run setting as it acts: lift options as the options each lift gets (their order matters only where one key
    is given twice, and then the last wins)."""
    value = settings.get(key)
    return parse_lift_options(value or []) if key == "lift_option" else value


def _fingerprint(records: list[dict]) -> str:
    """sha256 of what a run's images and scores are made from: every prompt's id, text and expected content."""
    rows = [[str(r["id"]), r["prompt"], r.get("expected")] for r in records]
    return hashlib.sha256(json_text(rows).encode()).hexdigest()


def read_scores(run_dir: Path) -> list[dict]:
    """The finished lines of a run's scores.jsonl (a line cut off by a crash is dropped)."""
    path = Path(run_dir) / "scores.jsonl"
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return rows


def evaluate(cfg: EvalConfig) -> Path:
    """Run (or resume) an evaluation; returns the run folder. Under `accelerate launch` / `torchrun` the processes
    share the batches and the main process writes every score, in the order one process would."""
    state = distributed_state()
    out = ensure_output_dir(cfg.output_dir)
    with RunLock(out) if state.is_main_process else contextlib.nullcontext():  # one launch per run folder
        return _evaluate(cfg, state, out)


def _evaluate(cfg: EvalConfig, state, out: Path) -> Path:
    records = load_prompt_set(cfg.prompts, cfg.prompts_path, cfg.prompts_subset, cfg.num_prompts)
    settings = {**to_dict(cfg), "prompts_sha256": _fingerprint(records)}
    _check_resume(out, settings, cfg.overwrite, clear=state.is_main_process)
    options = parse_reward_options(cfg.reward_option)
    check_rewards(cfg.rewards, options)  # everything missing, listed before any generation
    with state.main_process_first():  # the main process settles the folder before the others read it
        if state.is_main_process:
            atomic_write_json(out / "config.json", settings)
            _rewrite_scores(out, read_scores(out))  # drop a half-written last line before appending
        done = {(r["id"], r["seed"]) for r in read_scores(out)}
    jobs = [(rec, seed) for rec in records for seed in range(cfg.seeds) if (str(rec["id"]), seed) not in done]
    if jobs:
        _run_jobs(cfg, out, jobs, options, state)
    if state.is_main_process:
        summary = summarise(out)
        from .report import write_report

        write_report(out, summary, max_images=cfg.report_images)
    state.wait_for_everyone()
    return out


def _rewrite_scores(out: Path, rows: list[dict]) -> None:
    path = out / "scores.jsonl"
    if path.is_file():
        atomic_write_text(path, "".join(json_text(r) + "\n" for r in rows))


def _run_jobs(cfg: EvalConfig, out: Path, jobs: list, options: dict, state) -> None:
    """Generate, save and score `jobs` in batches of `batch_size`; with several processes, process r takes batches r,
    r + P, ... (the same batches one process would make, so the same images and scores) and the main process appends
    every row to scores.jsonl in job order."""
    if state.num_processes > 1 and cfg.device is None:
        cfg = dataclasses.replace(cfg, device=str(state.device))  # each rank on its own GPU
    rewards = {name: load_reward(name, **options.get(name, {})) for name in cfg.rewards}
    if state.is_main_process:  # the judges' models and rules, named in the summary
        atomic_write_json(out / JUDGES_FILE, {name: r.judged_with for name, r in rewards.items() if r.judged_with})
    # a content judge reads its own model's renders (the world's: the embedded model's); another model's only when
    # asked for by name
    profile = content_profile(cfg.model, cfg.judge_bundle)
    attributes = profile.attributes if profile is not None else ()
    judged = profile is not None and any(_judged(rec, attributes) for rec, _ in jobs)
    judge = (profile.content_judge(cfg.judge_bundle), attributes) if judged else None
    pipe, lifts = load_sampling(cfg)
    pipe.set_progress_bar_config(disable=True)
    check_prompts(pipe, sorted({rec["prompt"] for rec, _ in jobs}), cfg.on_long_prompt)
    for reward in rewards.values():
        reward.to(pipe.device)
    (out / "images").mkdir(exist_ok=True)
    batches = [jobs[start : start + cfg.batch_size] for start in range(0, len(jobs), cfg.batch_size)]
    main = state.is_main_process
    with open(out / "scores.jsonl", "a") if main else contextlib.nullcontext() as scores, \
            tqdm(total=len(jobs), desc="eval", unit="img", disable=not main) as bar:
        for first in range(0, len(batches), state.num_processes):  # one round: a batch per process
            mine = first + state.process_index
            rows = _run_batch(cfg, out, batches[mine], pipe, lifts, rewards, judge) if mine < len(batches) else []
            if state.num_processes > 1:
                rows = [row for part in gather_object([rows]) for row in part]  # ranks in order = batches in order
            if main:
                scores.write("".join(json_text(row) + "\n" for row in rows))
                scores.flush()
            bar.update(len(rows))


def _run_batch(cfg: EvalConfig, out: Path, batch: list, pipe, lifts, rewards: dict, judge) -> list[dict]:
    """Generate one batch, save its images, and return its score rows."""
    t0 = time.perf_counter()
    users = [r["prompt"] for r, _ in batch]
    used = rewrite_prompts(users, lifts)  # scored against the user's prompt
    images = generate_images(pipe, cfg, used, [s for _, s in batch], lifts, user_prompts=users)
    t1 = time.perf_counter()
    rows = _score_batch(batch, images, rewards, judge, pipe.device)
    t2 = time.perf_counter()
    for row, image, prompt_used in zip(rows, images, used):
        if prompt_used != row["prompt"]:
            row["prompt_used"] = prompt_used
        with atomic_path(out / row["image"], suffix=".png") as tmp:
            image.save(tmp, format="PNG")
        row["timings"] = {"generate_s": (t1 - t0) / len(batch), "score_s": (t2 - t1) / len(batch)}
    return rows


def _judged(rec: dict, attributes) -> bool:
    """Whether the content judge can check the record: it expects a value of each attribute the judge reads."""
    expected = rec.get("expected")
    return isinstance(expected, dict) and set(attributes) <= set(expected)


@torch.no_grad()
def _score_batch(batch: list, images: list, rewards: dict, judge, device) -> list[dict]:
    """Score rows of a batch; `judge`: (content judge, the attributes it reads) or None."""
    x = images_to_tensor(images).to(device)
    prompts = [r["prompt"] for r, _ in batch]
    scores = {name: reward(x, prompts).float().cpu().tolist() for name, reward in rewards.items()}
    details = {name: reward.last_details for name, reward in rewards.items() if reward.last_details is not None}
    judge, attributes = judge if judge is not None else (None, ())
    predicted = judge.predict(x.cpu()) if judge is not None else None
    rows = []
    for i, (rec, seed) in enumerate(batch):
        row = {"id": str(rec["id"]), "prompt": rec["prompt"], "seed": seed, "category": rec.get("category"),
               "image": f"images/{image_stem(str(rec['id']))}-s{seed}.png",
               "scores": {name: values[i] for name, values in scores.items()}}
        if rec.get("meta"):
            row["meta"] = rec["meta"]
        if details:
            row["details"] = {name: values[i] for name, values in details.items()}
        if predicted is not None and _judged(rec, attributes):
            row["expected"] = rec["expected"]
            row["semantic"] = {k: predicted[k][i] == rec["expected"][k] for k in attributes}
        rows.append(row)
    return rows


def image_stem(prompt_id: str) -> str:
    """A file name for a prompt id, unique per id: the id itself when it is a safe name of <= 80 characters, else its
    safe characters and a hash of the whole id ("a b" and "a_b" must not share a file)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", prompt_id)
    if safe == prompt_id and len(safe) <= 80:
        return safe
    return f"{safe[:70]}-{hashlib.sha1(prompt_id.encode()).hexdigest()[:8]}"


def summarise(run_dir: Path) -> dict:
    """summary.json: n, per-metric mean + 95 % CI (bootstrap over prompts), semantic accuracy, timings."""
    rows = read_scores(run_dir)
    if not rows:
        raise ValueError(f"run {str(run_dir)!r} has no scored images yet.")
    groups = [r["id"] for r in rows]
    metrics = {name: bootstrap_mean([r["scores"][name] for r in rows], groups) for name in rows[0]["scores"]}
    summary = {"n": len(rows), "prompts": len(set(groups)), "metrics": metrics}
    judged = [r for r in rows if "semantic" in r]
    if judged:
        ids = [r["id"] for r in judged]
        semantic = {k: bootstrap_mean([float(r["semantic"][k]) for r in judged], ids) for k in judged[0]["semantic"]}
        semantic["all"] = bootstrap_mean([float(all(r["semantic"].values())) for r in judged], ids)
        summary["semantic_accuracy"] = {k: v["mean"] for k, v in semantic.items()}
        summary["semantic_accuracy_ci95"] = {k: v["ci95"] for k, v in semantic.items()}
    categories = sorted({r["category"] for r in rows if r.get("category")})
    if len(categories) > 1:
        summary["by_category"] = {c: {name: float(np.mean([r["scores"][name] for r in rows if r["category"] == c]))
                                      for name in metrics} for c in categories}
        summary["by_category_ci95"] = {
            c: {name: bootstrap_mean([r["scores"][name] for r in rows if r["category"] == c],
                                     [r["id"] for r in rows if r["category"] == c])["ci95"] for name in metrics}
            for c in categories}
    summary["timings"] = {k: float(np.sum([r["timings"][k] for r in rows if "timings" in r]))
                          for k in ("generate_s", "score_s")}
    if (Path(run_dir) / JUDGES_FILE).is_file():
        summary["judged_with"] = json.loads((Path(run_dir) / JUDGES_FILE).read_text())
    atomic_write_json(Path(run_dir) / "summary.json", summary)
    return summary
