"""World datasets (imagefolder + metadata.jsonl), named prompt sets, contact sheets and statistics."""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image, ImageDraw
from tqdm.auto import tqdm

from .. import __version__
from ..files import atomic_dir, atomic_path, atomic_write_json, atomic_write_text, ensure_output_dir, json_text
from ..images import default_font
from .config import WORLD_PROMPT_STYLES, ContactSheetConfig, DatasetConfig, PromptSetConfig, RenderConfig, StatsConfig
from .prompts import (
    complex_prompt,
    indirect_share,
    literal_prompt,
    mixed_prompt,
    narrative_prompt,
    pool_phrases,
)
from .render import render_image
from .scene import Quality, Scene, sample_scene, scene_seed

__all__ = [
    "build_dataset",
    "contact_sheet",
    "iter_prompt_set",
    "render_scenes",
    "scene_record",
    "world_stats",
    "write_prompt_set",
]


def scene_record(scene: Scene, narrative_pool: str = "train") -> dict:
    """A scene's metadata row: its prompts in the four styles, attributes, quality factors and score."""
    d = scene.to_dict()
    return {
        "complex": complex_prompt(scene),
        "literal": literal_prompt(scene),
        "narrative": narrative_prompt(scene, narrative_pool),
        "mixed": mixed_prompt(scene, narrative_pool),
        "narrative_pool": narrative_pool,
        **{k: d[k] for k in ("setting", "kind", "color", "count", "aesthetic", "quality", "boxes")},
        "scene_seed": scene.seed,
    }


def _render_chunk(args: tuple) -> list[dict]:
    """Worker: render scenes [start, end) into `root`, return their metadata rows in order."""
    start, end, seed, size, root, shard_size, pool = args
    rows = []
    for i in range(start, end):
        scene = sample_scene(scene_seed(seed, i))
        rel = f"images/{i // shard_size:05d}/{i:07d}.png"
        render_image(scene, size).save(Path(root) / rel, format="PNG", compress_level=1)
        rows.append({"file_name": rel, **scene_record(scene, pool)})
    return rows


def build_dataset(cfg: DatasetConfig) -> Path:
    """Render `num_scenes` scenes in parallel into an imagefolder dataset at `output_dir`, atomically.

    Loads with `datasets.load_dataset("imagefolder", data_dir=output_dir)`.
    """
    out = Path(cfg.output_dir)
    if out.exists() and any(out.iterdir()) and not cfg.overwrite:
        raise ValueError(f"`output_dir` {str(out)!r} already holds files; pass `--overwrite` to replace it, "
                         "or choose another folder.")
    workers = cfg.num_workers or os.cpu_count() or 1
    chunk = max(50, min(1000, cfg.num_scenes // (workers * 8) or 1))
    with atomic_dir(out) as tmp:
        for shard in range((cfg.num_scenes - 1) // cfg.shard_size + 1):
            (tmp / "images" / f"{shard:05d}").mkdir(parents=True)
        jobs = [(s, min(s + chunk, cfg.num_scenes), cfg.seed, cfg.size, str(tmp), cfg.shard_size, cfg.narrative_pool)
                for s in range(0, cfg.num_scenes, chunk)]
        with open(tmp / "metadata.jsonl", "w") as meta, tqdm(total=cfg.num_scenes, desc="render", unit="scene") as bar:
            with ProcessPoolExecutor(workers) as ex:
                for rows in ex.map(_render_chunk, jobs):
                    meta.writelines(json_text(r) + "\n" for r in rows)
                    bar.update(len(rows))
        atomic_write_json(tmp / "world.json", {"num_scenes": cfg.num_scenes, "seed": cfg.seed, "size": cfg.size,
                                              "narrative_pool": cfg.narrative_pool, "promptlift_version": __version__})
    return out


def iter_prompt_set(name: str, num_prompts: int = 200, seed: int = 0) -> Iterator[dict]:
    """Lines of a named world prompt set: {"prompt", "expected", "style", "scene_seed"}.

    Scenes come from the prompt-set seed stream, apart from every dataset. The complex set is
    written for the best quality, so its prompts carry every quality keyword, as a skilled user's would.
    """
    if name not in WORLD_PROMPT_STYLES:
        raise ValueError(f"unknown world prompt set {name!r}; choose one of {list(WORLD_PROMPT_STYLES)}.")
    style = WORLD_PROMPT_STYLES[name]
    for i in range(num_prompts):
        seed_i = scene_seed(seed, i, stream="prompts")
        scene = sample_scene(seed_i, quality=Quality.best() if style == "complex" else None)
        if style == "complex":
            prompt = complex_prompt(scene)
        elif style == "literal":
            prompt = literal_prompt(scene)
        elif style == "mixed":
            prompt = mixed_prompt(scene, name.removeprefix("mixed-"))
        else:
            prompt = narrative_prompt(scene, name.removeprefix("narrative-"))
        yield {"prompt": prompt, "expected": scene.attributes, "style": name, "scene_seed": seed_i}


def write_prompt_set(cfg: PromptSetConfig) -> str | Path:
    """Write the set to `cfg.output` atomically (returns the path), or return it as text when no output is given."""
    text = "".join(json_text(line) + "\n" for line in iter_prompt_set(cfg.name, cfg.num_prompts, cfg.seed))
    if cfg.output is None:
        return text
    return atomic_write_text(cfg.output, text)


def render_scenes(cfg: RenderConfig) -> list[Path]:
    """Render scenes to `output_dir` as PNG + JSON (scene and prompts); return the PNG paths."""
    out = ensure_output_dir(cfg.output_dir)
    paths = []
    for i in range(cfg.num_scenes):
        scene = sample_scene(scene_seed(cfg.seed, i))
        png = out / f"scene-{cfg.seed}-{i:04d}.png"
        with atomic_path(png, suffix=".png") as tmp:
            render_image(scene, cfg.size).save(tmp, format="PNG")
        atomic_write_json(png.with_suffix(".json"), scene_record(scene))
        paths.append(png)
    return paths


def contact_sheet(cfg: ContactSheetConfig) -> Path:
    """N scenes sorted by aesthetic score (best first), each beside its score, factors and three prompts."""
    scenes = sorted((sample_scene(scene_seed(cfg.seed, i)) for i in range(cfg.num_scenes)), key=lambda s: -s.aesthetic)
    side = cfg.size * cfg.scale
    pad, text_w = 6, 900
    sheet = Image.new("RGB", (side + text_w + 2 * pad, cfg.num_scenes * (side + pad) + pad), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = default_font(12)
    for row, scene in enumerate(scenes):
        y = pad + row * (side + pad)
        sheet.paste(render_image(scene, cfg.size).resize((side, side), Image.NEAREST), (pad, y))
        q = scene.quality
        factors = "  ".join(f"{k} {getattr(q, k):.2f}" for k in ("lighting", "detail", "harmony", "clutter", "framing", "artifacts"))
        lines = [f"aesthetic {scene.aesthetic:.2f}   {factors}", f"complex:   {complex_prompt(scene)}",
                 f"literal:   {literal_prompt(scene)}", f"narrative: {narrative_prompt(scene, 'train')}",
                 f"narr.-val: {narrative_prompt(scene, 'val')}"]
        for j, line in enumerate(lines):
            draw.text((side + 2 * pad, y + 4 + j * 16), line, fill=(20, 20, 20) if j else (150, 30, 30), font=font)
    with atomic_path(cfg.output, suffix=".png") as tmp:
        sheet.save(tmp, format="PNG")
    return Path(cfg.output)


def world_stats(cfg: StatsConfig) -> dict:
    """Score distribution, needles, indirect naming per narrative pool, and whether the pools are disjoint."""
    scenes = [sample_scene(scene_seed(cfg.seed, i)) for i in range(cfg.num_scenes)]
    scores = np.array([s.aesthetic for s in scenes])
    train, val = pool_phrases("train"), pool_phrases("val")
    shared = sorted(train & val)
    contained = sorted((a, b) for a in train for b in val if a != b and (f" {a} " in f" {b} " or f" {b} " in f" {a} "))
    return {
        "num_scenes": cfg.num_scenes,
        "aesthetic_percentiles": {str(p): round(float(np.percentile(scores, p)), 3) for p in (1, 10, 50, 90, 99)},
        "share_aesthetic_at_least": {str(t): round(float((scores >= t).mean()), 4) for t in (6, 7, 7.5, 8, 8.5)},
        "indirect_share": {pool: round(indirect_share(scenes, pool), 4) for pool in ("train", "val")},
        "pool_sizes": {"train": len(train), "val": len(val)},
        "pools_disjoint": not shared and not contained,
        "shared_phrases": shared + [f"{a} ~ {b}" for a, b in contained],
    }
