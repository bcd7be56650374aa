"""The bundle's measured numbers: judges on held-out renders, the base model on world prompt sets, the
"model-preferred prompt" effect, generation time and size. Written into bundle/card.json.

The prompt sets are scored by the evaluation harness itself (`promptlift eval`): the runs land in
work_dir/measure/<set>/ with their images, scores and report.html, and are the base runs that every
method's `promptlift compare` is measured against.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from diffusers import StableDiffusionPipeline

from ...evaluation.run import EvalConfig, evaluate
from ...judges.bundle import attribute_accuracy, bundle_size_mb, load_judge
from ...pipeline import MODEL_DEFAULTS_FILE
from ...judges.plugin import EMBEDDED_DECLARATION
from ...files import atomic_write_json, atomic_write_text, json_text
from ...world.batches import blur
from ...world.dataset import iter_prompt_set
from ...world.prompts import SCENERY
from .diffusion import generate_for_eval
from .recipe import BundleConfig, eval_renders, load_vae, spearman, vae_round_trip, write_card

__all__ = ["measure_bundle"]


def _judges_on_held_out(cfg: BundleConfig) -> dict:
    held_out = eval_renders(cfg)
    truth = [s.attributes for s in held_out.scenes]
    scores = torch.tensor([s.aesthetic for s in held_out.scenes])
    trip = vae_round_trip(load_vae(cfg), held_out.images)
    judge = load_judge(cfg.output_dir, "attributes")
    result = {"attributes": {"clean": attribute_accuracy(judge, held_out.images, truth),
                             "blur_0.8": attribute_accuracy(judge, blur(held_out.images, 0.8), truth),
                             "vae_round_trip": attribute_accuracy(judge, trip, truth)}}
    for name in ("aesthetic-reward", "aesthetic"):
        model = load_judge(cfg.output_dir, name)
        with torch.no_grad():
            result[name] = {"spearman_renders": round(spearman(model(held_out.images), scores), 4),
                            "spearman_vae_round_trips": round(spearman(model(trip), scores), 4)}
    return result


def _strip_quality(prompt: str) -> str:
    """A complex prompt without its quality keywords: content + scenery only."""
    parts = prompt.split(", ")
    for scenery in SCENERY.values():
        n = len(scenery.split(", "))
        if ", ".join(parts[1 : 1 + n]) == scenery:
            return ", ".join(parts[: 1 + n])
    return prompt


def _write_prompts(path: Path, lines) -> str:
    atomic_write_text(path, "".join(json_text({"id": str(i), **x}) + "\n" for i, x in enumerate(lines)))
    return str(path)


def _eval_set(cfg: BundleConfig, name: str, prompts: str, guidance_scale: float, seeds: int | None = None) -> dict:
    """Run `promptlift eval` on one prompt set with the bundle being measured; the summary numbers."""
    bundle = str(Path(cfg.output_dir).resolve())
    run = evaluate(EvalConfig(
        model=str(Path(bundle) / "pipeline"), prompts=prompts, num_prompts=cfg.measure_prompts, seeds=seeds or cfg.measure_seeds,
        guidance_scale=guidance_scale, num_inference_steps=cfg.measure_inference_steps,
        rewards=["world-aesthetic", "world-clip"], judge_bundle=Path(bundle),
        reward_option=[f"world-aesthetic.bundle_dir={bundle}", f"world-clip.bundle_dir={bundle}"],
        output_dir=Path(cfg.work_dir) / "measure" / name, batch_size=16))
    summary = json.loads((run / "summary.json").read_text())
    return {"n": summary["n"], **{k: round(v, 4) for k, v in summary["semantic_accuracy"].items()},
            "aesthetic": round(summary["metrics"]["world-aesthetic"]["mean"], 3),
            "aesthetic_ci95": [round(v, 3) for v in summary["metrics"]["world-aesthetic"]["ci95"]],
            "world_clip": round(summary["metrics"]["world-clip"]["mean"], 2), "run": str(run)}


def measure_bundle(cfg: BundleConfig) -> dict:
    """Measure the assembled bundle and record the numbers in its card."""
    measure_dir = Path(cfg.work_dir) / "measure"
    # 1. guidance: pick the scale that gets the complex prompts right most often (on a separate slice, one seed)
    tune = _write_prompts(measure_dir / "guidance-search.jsonl", iter_prompt_set("complex", min(64, cfg.measure_prompts), seed=7))
    by_scale = {g: _eval_set(cfg, f"guidance-{g:g}", tune, g, seeds=1) for g in cfg.measure_guidance_scales}
    best = max(by_scale, key=lambda g: (by_scale[g]["all"], by_scale[g]["aesthetic"]))
    # 2. the base model on every world prompt set, through the evaluation harness
    sets = {name: _eval_set(cfg, name, f"world-{name}", best)
            for name in ("complex", "literal", "narrative-train", "narrative-val")}
    # 3. model-preferred prompts: the same content with and without the quality keywords
    plain = _write_prompts(measure_dir / "complex-without-quality-keywords.jsonl",
                           ({**x, "prompt": _strip_quality(x["prompt"])}
                            for x in iter_prompt_set("complex", cfg.measure_prompts, seed=0)))
    keywords_effect = {"with_quality_keywords": sets["complex"],
                       "without_quality_keywords": _eval_set(cfg, "complex-without-quality-keywords", plain, best)}
    # 4. speed and size
    pipe = StableDiffusionPipeline.from_pretrained(Path(cfg.output_dir) / "pipeline")
    pipe.set_progress_bar_config(disable=True)
    timing = _generation_time(pipe, best, cfg.measure_timing_batch, cfg.measure_inference_steps)
    metrics = {"guidance_scale": best, "guidance_search": by_scale, "judges": _judges_on_held_out(cfg),
               "prompt_sets": sets, "quality_keywords": keywords_effect, **timing,
               "bundle_size_mb": bundle_size_mb(cfg.output_dir), "seeds": list(range(cfg.measure_seeds)),
               "prompts_per_set": cfg.measure_prompts, "inference_steps": cfg.measure_inference_steps}
    write_card(cfg, "measure", metrics)
    atomic_write_json(Path(cfg.output_dir) / "pipeline" / MODEL_DEFAULTS_FILE,
                      {"guidance_scale": best, "measured_by": "promptlift world train-bundle --parts measure",
                       **EMBEDDED_DECLARATION})
    return metrics


def _generation_time(pipe, guidance_scale: float, batch: int, steps: int) -> dict:
    """Seconds per image at `steps` steps: one image alone, and per image in a batch (best of 3)."""
    def once(n: int) -> float:
        t0 = time.perf_counter()
        generate_for_eval(pipe, ["two red boats at sunset"] * n, list(range(n)), guidance_scale, num_inference_steps=steps)
        return (time.perf_counter() - t0) / n

    once(1)  # warm-up
    return {"seconds_per_image_batch1": round(min(once(1) for _ in range(3)), 4),
            "seconds_per_image_batched": round(min(once(batch) for _ in range(3)), 4), "timing_batch": batch,
            "torch_threads": torch.get_num_threads()}
