"""Lay out an eval run's images the way external benchmark tools expect them."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..files import atomic_dir, json_text
from .run import read_scores
from .config import ExportConfig

__all__ = ["ExportConfig", "export_run"]


def _geneval(rows: list[dict], run: Path, out: Path) -> None:
    """<out>/<prompt index:05d>/metadata.jsonl + samples/<seed:04d>.png (GenEval's evaluate_images.py input)."""
    for row in rows:
        meta = (row.get("meta") or {}).get("geneval")
        if meta is None:
            raise ValueError(f"run {str(run)!r} was not made from the `geneval` prompt set (row {row['id']} has no "
                             "GenEval metadata); evaluate with `--prompts geneval`.")
        folder = out / f"{int(row['id']):05d}"
        (folder / "samples").mkdir(parents=True, exist_ok=True)
        (folder / "metadata.jsonl").write_text(json_text(meta) + "\n")
        shutil.copyfile(run / row["image"], folder / "samples" / f"{row['seed']:04d}.png")


def _t2i(rows: list[dict], run: Path, out: Path) -> None:
    """<out>/samples/<prompt>_<n:06d>.png, n counting all images (T2I-CompBench's scripts read the prompt from it)."""
    (out / "samples").mkdir(parents=True, exist_ok=True)
    for n, row in enumerate(rows):
        name = row["prompt"].replace("/", " ").strip()
        shutil.copyfile(run / row["image"], out / "samples" / f"{name}_{n:06d}.png")


def export_run(cfg: ExportConfig) -> Path:
    """Write the layout to `output_dir`; returns it."""
    run = Path(cfg.run)
    rows = read_scores(run)
    with atomic_dir(cfg.output_dir) as tmp:
        (_geneval if cfg.format == "geneval" else _t2i)(rows, run, tmp)
    return Path(cfg.output_dir)
