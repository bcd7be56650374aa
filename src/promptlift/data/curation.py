"""`promptlift curate`: Emu's automatic curation funnel (Dai et al. 2023, arXiv 2309.15807, section 3.3).

1. Score: every image is read (unreadable -> dropped with the reason), checked for size and aspect ratio,
   and scored by an aesthetic reward and optionally a CLIP image-text reward; each process of an
   `accelerate launch` scores its own shard and writes its own score file.
2. Select (main process): images under a threshold are dropped; the rest are ranked by aesthetic score
   and taken greedily, skipping near-duplicates of images already kept and classes over their quota,
   until `num_keep`.
3. Write: the curated imagefolder, decisions.jsonl (every image, kept or dropped and why) and report.html.
The input is streamed (optionally read and decoded by a thread ahead of the scoring models): only scores and
16x16 thumbnails (for de-duplication) are held in memory.
"""

from __future__ import annotations

import json
import math
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..html import histogram_svg, img_tag, page
from ..files import atomic_dir, atomic_write_json, atomic_write_text, json_text
from ..devices import distributed_state
from ..images import images_to_tensor
from .prefetch import prefetch
from .records import Record, count_records, iter_records
from .config import CurateConfig

__all__ = ["CurateConfig", "curate"]


# ---------------------------------------------------------------------------------------------
# 1. Score


def _thumbnails(x: torch.Tensor) -> np.ndarray:
    """(B, 256) unit-norm 16x16 grey thumbnails of a batch (B, 3, H, W), mean removed: near-duplicates have
    cosine close to 1."""
    grey = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    v = torch.nn.functional.adaptive_avg_pool2d(grey, 16).flatten(1)
    v = v - v.mean(1, keepdim=True)
    return (v / (v.norm(dim=1, keepdim=True) + 1e-6)).half().numpy()


def _size_reason(image, cfg: CurateConfig) -> str | None:
    w, h = image.size
    if min(w, h) < cfg.min_size:
        return f"size: {w}x{h} below {cfg.min_size}px"
    if max(w, h) / min(w, h) > cfg.max_aspect:
        return f"aspect: {max(w, h) / min(w, h):.2f} above {cfg.max_aspect}"
    return None


def _has_text(image) -> bool:
    try:
        import pytesseract
    except ImportError as e:
        raise ImportError("`text_filter` needs pytesseract and the tesseract binary: pip install pytesseract; "
                          "apt-get install tesseract-ocr") from e
    return bool(pytesseract.image_to_string(image).strip())


@torch.no_grad()
def _score_batch(batch: list[Record], rewards: dict, cfg: CurateConfig, thumbs: list) -> list[dict]:
    """Scores of a batch; appends (index, thumbnail) of each image to `thumbs`."""
    x = images_to_tensor([r.image for r in batch])
    thumbs += zip([r.index for r in batch], _thumbnails(x))
    captions = [r.caption or "" for r in batch]
    aesthetic = rewards["aesthetic"](x, captions).tolist()
    clip = rewards["clip"](x, captions).tolist() if "clip" in rewards else [None] * len(batch)
    return [{"index": r.index, "key": r.key, "aesthetic": a, "clip": c, "caption": r.caption,
             "class": r.meta.get(cfg.balance_column) if cfg.balance_column else None}
            for r, a, c in zip(batch, aesthetic, clip)]


def score_shard(cfg: CurateConfig, work: Path, rank: int, world: int) -> Path:
    """Score this process's shard; writes scores-{rank}.jsonl (one line per image) and thumbs-{rank}.npy. A batch is
    the readable images of one block of `batch_size` records, so every process count makes the same batches (and the
    same scores, to the bit)."""
    from ..rewards import check_rewards, load_reward, parse_reward_options

    options = parse_reward_options(cfg.reward_option)
    names = {"aesthetic": cfg.aesthetic_reward, **({"clip": cfg.clip_reward} if cfg.clip_reward else {})}
    check_rewards(list(names.values()), options)
    rewards = {role: load_reward(name, **options.get(name, {})) for role, name in names.items()}
    thumbs, batch = [], []
    out_path = work / f"scores-{rank}.jsonl"
    total = count_records(cfg.input, shard=(rank, world), block=cfg.batch_size)
    with open(out_path, "w") as out, tqdm(total=total, desc=f"score[{rank}]", unit="img", disable=rank != 0) as bar:
        def flush():
            for row in _score_batch(batch, rewards, cfg, thumbs):
                out.write(json_text(row) + "\n")
            batch.clear()

        def prepare(rec: Record) -> tuple[Record, str | None]:
            """Decoding and the size and text checks: run ahead of scoring in a thread."""
            reason = rec.error or _size_reason(rec.image, cfg)
            if reason is None and cfg.text_filter and _has_text(rec.image):
                reason = "text: the image contains text"
            return rec, reason

        records = iter_records(cfg.input, split=cfg.split, image_column=cfg.image_column,
                               caption_column=cfg.caption_column, shard=(rank, world), block=cfg.batch_size)
        prepared = prefetch(records, prepare, depth=4 * cfg.batch_size) if cfg.read_ahead else map(prepare, records)
        for rec, reason in prepared:
            if batch and rec.index // cfg.batch_size != batch[0].index // cfg.batch_size:
                flush()  # the block ended
            if reason:
                out.write(json_text({"index": rec.index, "key": rec.key, "dropped": reason}) + "\n")
            else:
                batch.append(rec)
            bar.update(1)
        if batch:
            flush()
    index = np.array([i for i, _ in thumbs], dtype=np.int64)
    np.savez(work / f"thumbs-{rank}.npz", index=index, thumbs=np.stack([t for _, t in thumbs]) if thumbs else
             np.zeros((0, 256), np.float16))
    return out_path


# ---------------------------------------------------------------------------------------------
# 2. Select


def select(rows: list[dict], thumbs: dict[int, np.ndarray], cfg: CurateConfig) -> list[dict]:
    """Decide every image: thresholds, then rank by aesthetic, skipping duplicates and full classes."""
    decisions = []
    candidates = []
    for row in rows:
        if "dropped" in row:
            decisions.append({**row, "kept": False, "reason": row.pop("dropped")})
        elif cfg.min_aesthetic is not None and row["aesthetic"] < cfg.min_aesthetic:
            decisions.append({**row, "kept": False, "reason": f"aesthetic {row['aesthetic']:.3f} < {cfg.min_aesthetic}"})
        elif cfg.min_clip is not None and row["clip"] < cfg.min_clip:
            decisions.append({**row, "kept": False, "reason": f"clip {row['clip']:.3f} < {cfg.min_clip}"})
        else:
            candidates.append(row)
    quota = math.ceil(cfg.max_share_per_class * cfg.num_keep)
    per_class: Counter = Counter()
    dim = next(iter(thumbs.values())).shape[0] if thumbs else 0
    kept_thumbs = np.zeros((cfg.num_keep, dim), np.float32)  # row i: the i-th kept image's thumbnail
    kept_keys: list[str] = []
    for row in sorted(candidates, key=lambda r: (-r["aesthetic"], r["index"])):
        reason = None
        if len(kept_keys) >= cfg.num_keep:
            reason = f"rank: below the top {cfg.num_keep}"
        elif cfg.balance_column and per_class[row["class"]] >= quota:
            reason = f"balance: class {row['class']!r} has its quota of {quota}"
        elif cfg.dedup_threshold is not None and kept_keys:
            sims = kept_thumbs[: len(kept_keys)] @ thumbs[row["index"]].astype(np.float32)
            j = int(sims.argmax())
            if sims[j] >= cfg.dedup_threshold:
                reason = f"near-duplicate of {kept_keys[j]} (cosine {sims[j]:.3f})"
        if reason:
            decisions.append({**row, "kept": False, "reason": reason})
            continue
        per_class[row["class"]] += 1
        kept_thumbs[len(kept_keys)] = thumbs[row["index"]]
        kept_keys.append(row["key"])
        decisions.append({**row, "kept": True, "reason": f"rank {len(kept_keys)}"})
    return sorted(decisions, key=lambda d: d["index"])


# ---------------------------------------------------------------------------------------------
# 3. Write


def _kept_records(cfg: CurateConfig, kept: dict[int, dict]):
    """(index, metadata, write(path)) of kept images: files are copied from an imagefolder, decoded only from a hub set."""
    root = Path(cfg.input).expanduser()
    if root.is_dir():
        with open(root / "metadata.jsonl") as f:
            for index, line in enumerate(f):
                if index in kept:
                    meta = json.loads(line)
                    yield index, meta, lambda dst, src=root / meta["file_name"]: shutil.copyfile(src, dst)
        return
    for rec in iter_records(cfg.input, split=cfg.split, image_column=cfg.image_column, caption_column=cfg.caption_column):
        if rec.index in kept:
            yield rec.index, rec.meta, lambda dst, image=rec.image: image.save(dst, format="PNG")


def _write_curated(cfg: CurateConfig, decisions: list[dict], out: Path) -> None:
    """Kept images into out/images, and out/metadata.jsonl with their metadata and curation scores."""
    kept = {d["index"]: d for d in decisions if d["kept"]}
    (out / "images").mkdir(parents=True)
    with open(out / "metadata.jsonl", "w") as meta_file:
        for index, meta, write in _kept_records(cfg, kept):
            d = kept[index]
            name = f"images/{index:08d}.png"
            write(out / name)
            meta_file.write(json_text({**meta, "file_name": name, "source_key": d["key"],
                                        "curation": {"aesthetic": d["aesthetic"], "clip": d["clip"], "rank": d["reason"]}}) + "\n")


def _write_report(cfg: CurateConfig, decisions: list[dict], out: Path) -> None:
    counts = Counter(d["reason"].split(":")[0].split(" ")[0] if not d["kept"] else "kept" for d in decisions)
    rows = "".join(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in sorted(counts.items()))
    scored = [d for d in decisions if "aesthetic" in d]
    kept = [d for d in decisions if d["kept"]]
    plots = histogram_svg([d["aesthetic"] for d in scored], "aesthetic, all scored")
    plots += histogram_svg([d["aesthetic"] for d in kept], "aesthetic, kept") if kept else ""
    if scored and scored[0].get("clip") is not None:
        plots += histogram_svg([d["clip"] for d in scored], "clip, all scored")
    images = sorted((out / "images").glob("*.png"))[: cfg.report_images]
    sheet = "".join(f"<div class='cell'>{img_tag(p)}</div>" for p in images)
    body = (f"<h1>promptlift curate: {len(kept)} of {len(decisions)} kept</h1><p>input {cfg.input}</p>"
            f"<h2>Decisions</h2><table><tr><th>outcome</th><th>images</th></tr>{rows}</table>"
            f"<h2>Scores</h2><div class='plots'>{plots}</div><h2>Kept (first {len(images)})</h2><div class='grid'>{sheet}</div>")
    atomic_write_text(out / "report.html", page("promptlift curate", body))


def curate(cfg: CurateConfig) -> Path:
    """Run the funnel; under `accelerate launch` every process scores a shard and the main process selects."""
    state = distributed_state()
    out = Path(cfg.output_dir)
    if state.is_main_process and out.exists() and any(out.iterdir()) and not cfg.overwrite:
        raise ValueError(f"`output_dir` {str(out)!r} already holds files; pass `--overwrite` or choose another folder.")
    work = out.with_name(f".{out.name}.scores")
    if state.is_main_process:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
    try:
        state.wait_for_everyone()
        score_shard(cfg, work, state.process_index, state.num_processes)
        state.wait_for_everyone()
        if state.is_main_process:
            rows, thumbs = [], {}
            for rank in range(state.num_processes):
                rows += [json.loads(x) for x in (work / f"scores-{rank}.jsonl").read_text().splitlines()]
                data = np.load(work / f"thumbs-{rank}.npz")
                thumbs.update(zip(data["index"].tolist(), data["thumbs"]))
            decisions = select(rows, thumbs, cfg)
            with atomic_dir(out) as tmp:
                _write_curated(cfg, decisions, tmp)
                atomic_write_text(tmp / "decisions.jsonl", "".join(json_text(d) + "\n" for d in decisions))
                atomic_write_json(tmp / "curate_config.json", {k: str(v) for k, v in vars(cfg).items()})
                _write_report(cfg, decisions, tmp)
            shutil.rmtree(work, ignore_errors=True)
    except BaseException:  # a failed run leaves no hidden score folder behind
        shutil.rmtree(work, ignore_errors=True)
        raise
    state.wait_for_everyone()
    return out
