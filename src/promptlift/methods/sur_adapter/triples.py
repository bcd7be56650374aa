"""(simple prompt, complex prompt, image) triples for SUR-adapter from real (image, complex prompt) pairs.

The simple prompt comes from a column, or from an image-captioning model (any transformers image-text-to-text
model id, e.g. Salesforce/blip-image-captioning-large, as SURD used BLIP). Semantic correction, as in the
paper's SURD: a triple is dropped when its simple prompt disagrees with the image (CLIP image-text score below
`min_image_clip`) or with the complex prompt (100 x cosine of their CLIP text features below
`min_text_agreement`). Every input gets a line in decisions.jsonl saying kept or why not.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tqdm.auto import tqdm

from ...data.records import Record, iter_records
from ...rewards import check_rewards, load_reward, parse_reward_options
from ...files import atomic_dir, atomic_write_text, json_text
from ...images import images_to_tensor
from .config import TriplesConfig

__all__ = ["TriplesConfig", "build_triples"]


class _Captioner:
    def __init__(self, model_id: str, max_new_tokens: int):
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.processor = AutoProcessor.from_pretrained(model_id)
        self.model = AutoModelForImageTextToText.from_pretrained(model_id).eval()
        self.max_new_tokens = max_new_tokens

    @torch.no_grad()
    def __call__(self, images) -> list[str]:
        inputs = self.processor(images=images, return_tensors="pt").to(self.model.device)
        ids = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        return [t.strip() for t in self.processor.batch_decode(ids, skip_special_tokens=True)]


def _decide(batch: list[Record], simple: list[str | None], cfg: TriplesConfig, reward) -> list[dict]:
    rows = [{"index": r.index, "key": r.key, "simple": s, "complex": r.meta.get(cfg.complex_column)}
            for r, s in zip(batch, simple)]
    ok = []
    for row, rec in zip(rows, batch):
        if rec.image is None:
            row["reason"] = rec.error
        elif not row["complex"]:
            row["reason"] = f"no complex prompt in column {cfg.complex_column!r}"
        elif not row["simple"]:
            row["reason"] = "no simple prompt"
        else:
            ok.append((row, rec))
    if ok:
        with torch.no_grad():
            images = images_to_tensor([rec.image for _, rec in ok])
            simple_texts = [row["simple"] for row, _ in ok]
            image_clip = reward(images, simple_texts).tolist()
            agree = (100 * (reward.text_features(simple_texts) * reward.text_features([row["complex"] for row, _ in ok]))
                     .sum(-1)).tolist()
        for (row, _), ic, ta in zip(ok, image_clip, agree):
            ic, ta = round(ic, 3), round(ta, 3)  # decided on the values recorded
            row["image_clip"], row["text_agreement"] = ic, ta
            if cfg.min_image_clip is not None and ic < cfg.min_image_clip:
                row["reason"] = f"simple prompt disagrees with the image: clip {ic:.3f} < {cfg.min_image_clip}"
            elif cfg.min_text_agreement is not None and ta < cfg.min_text_agreement:
                row["reason"] = f"simple prompt disagrees with the complex one: {ta:.3f} < {cfg.min_text_agreement}"
    for row in rows:
        row["kept"] = "reason" not in row
        row.setdefault("reason", "kept")
    return rows


def build_triples(cfg: TriplesConfig) -> Path:
    """Write the triples imagefolder, decisions.jsonl and a summary; atomically (nothing half-written)."""
    out = Path(cfg.output_dir)
    if out.exists() and not cfg.overwrite:
        raise FileExistsError(f"`output_dir` {str(out)!r} exists; pass `overwrite` to replace it.")
    options = parse_reward_options(cfg.reward_option)
    check_rewards([cfg.clip_reward], options)
    reward = load_reward(cfg.clip_reward, **options.get(cfg.clip_reward, {}))
    if not hasattr(reward, "text_features"):
        raise ValueError(f"`clip_reward` {cfg.clip_reward!r} has no text tower to compare prompts; use clip-score or world-clip.")
    captioner = _Captioner(cfg.captioner, cfg.max_caption_tokens) if cfg.captioner else None
    records = iter_records(cfg.input, split=cfg.split, image_column=cfg.image_column)
    kept = 0
    with atomic_dir(out) as tmp:
        (tmp / "images").mkdir()
        with open(tmp / "metadata.jsonl", "w") as meta_file, open(tmp / "decisions.jsonl", "w") as decisions, \
                tqdm(desc="triples", unit="img") as bar:
            while batch := [r for _, r in zip(range(cfg.batch_size), records)]:
                simple = [r.meta.get(cfg.simple_column) if cfg.simple_column else None for r in batch]
                missing = [i for i, (r, s) in enumerate(zip(batch, simple)) if not s and r.image is not None]
                if captioner is not None and missing:
                    for i, caption in zip(missing, captioner([batch[i].image for i in missing])):
                        simple[i] = caption
                for row, rec in zip(_decide(batch, simple, cfg, reward), batch):
                    decisions.write(json_text(row) + "\n")
                    if row["kept"]:
                        name = f"images/{rec.index:08d}.png"
                        rec.image.save(tmp / name)
                        meta = {k: v for k, v in rec.meta.items() if k != "file_name"}
                        meta_file.write(json_text({**meta, "file_name": name, "simple": row["simple"],
                                                    "complex": row["complex"], "image_clip": row["image_clip"],
                                                    "text_agreement": row["text_agreement"]}) + "\n")
                        kept += 1
                bar.update(len(batch))
        atomic_write_text(tmp / "triples_config.json", json_text({"kept": kept, **{k: str(v) for k, v in vars(cfg).items()}}, indent=2))
    return out
