"""Stream (image, caption, metadata) records from an imagefolder with metadata.jsonl or a Hugging Face dataset.

Records are read one at a time; an unreadable image becomes a record with `error` set, never an exception.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from PIL import Image

__all__ = ["Record", "count_records", "iter_records"]


@dataclass
class Record:
    """One input item. `image` is None when it could not be read; `error` then says why."""

    index: int
    key: str
    image: Image.Image | None
    caption: str | None
    meta: dict = field(default_factory=dict)
    error: str | None = None


def _open(path: Path) -> tuple[Image.Image | None, str | None]:
    try:
        with Image.open(path) as im:
            im.load()
            return (im if im.mode == "RGB" else im.convert("RGB")), None
    except Exception as e:  # any decoder error: the image is dropped with its reason
        return None, f"unreadable: {type(e).__name__}: {e}"


def in_shard(index: int, shard: tuple[int, int], block: int = 1) -> bool:
    """Whether record `index` belongs to shard (rank, world): blocks of `block` consecutive records go to the ranks in
    turn (so a process scoring whole blocks as batches makes the batches one process would)."""
    rank, world = shard
    return (index // block) % world == rank


def _imagefolder(root: Path, caption_column: str | None, shard: tuple[int, int], block: int) -> Iterator[Record]:
    meta_path = root / "metadata.jsonl"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{str(root)!r} has no metadata.jsonl; pass an imagefolder (file_name + columns per line) "
                                "or a Hugging Face dataset id.")
    with open(meta_path) as f:
        for index, line in enumerate(f):
            if not in_shard(index, shard, block) or not line.strip():
                continue
            try:
                meta = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{meta_path}:{index + 1}: not a JSON object ({e.msg}); fix or remove that line.") from None
            if not isinstance(meta, dict):
                raise ValueError(f"{meta_path}:{index + 1}: a line must be a JSON object with file_name, got "
                                 f"{type(meta).__name__}.")
            name = meta.get("file_name")
            image, error = _open(root / name) if name else (None, "no file_name in metadata")
            caption = meta.get(caption_column) if caption_column else None
            yield Record(index, str(name), image, caption, meta, error)


def _hf_dataset(name: str, split: str, image_column: str, caption_column: str | None,
                shard: tuple[int, int], block: int) -> Iterator[Record]:
    from datasets import load_dataset

    ds = load_dataset(name, split=split, streaming=True)
    for index, row in enumerate(ds):
        if not in_shard(index, shard, block):
            continue
        image = row.get(image_column)
        error = None
        if not isinstance(image, Image.Image):
            image, error = None, f"unreadable: column {image_column!r} holds no image"
        else:
            image = image.convert("RGB")
        meta = {k: v for k, v in row.items() if k != image_column and isinstance(v, (str, int, float, bool, type(None)))}
        yield Record(index, str(row.get("id", index)), image, row.get(caption_column) if caption_column else None, meta, error)


def count_records(source: str | Path, shard: tuple[int, int] = (0, 1), block: int = 1) -> int | None:
    """How many records `iter_records(source, shard=shard)` yields, when it can be known without reading them (a local
    imagefolder); None for a streamed hub dataset."""
    meta = Path(source).expanduser() / "metadata.jsonl"
    if not meta.is_file():
        return None
    with open(meta, "rb") as f:
        return sum(1 for index, line in enumerate(f) if in_shard(index, shard, block) and line.strip())


def iter_records(source: str | Path, *, split: str = "train", image_column: str = "image",
                 caption_column: str | None = None, shard: tuple[int, int] = (0, 1), block: int = 1) -> Iterator[Record]:
    """Records of `source` (a local imagefolder or a hub dataset id); `shard=(rank, world)` keeps every world-th block
    of `block` records (see `in_shard`)."""
    path = Path(source).expanduser()
    if path.is_dir():
        return _imagefolder(path, caption_column, shard, block)
    if path.exists():
        raise ValueError(f"input {str(source)!r} is a file; pass an imagefolder (with metadata.jsonl) or a dataset id.")
    return _hf_dataset(str(source), split, image_column, caption_column, shard, block)
