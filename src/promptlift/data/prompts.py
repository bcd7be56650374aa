"""Training prompts from a text file, a JSONL file, an imagefolder's metadata.jsonl or a Hugging Face dataset.

TextCraftor and the refiner train on prompts only; this reads them from wherever they are, one column of any
dataset, keeping order and dropping empty entries.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["read_prompts"]


def read_prompts(source: str | Path, column: str = "prompt", *, split: str = "train", limit: int | None = None) -> list[str]:
    """Prompts of `source`: a .txt file (one per line), a .jsonl file or an imagefolder (`column` of each
    line of metadata.jsonl), or a hub dataset id (`column` of `split`). The first `limit` if given."""
    path = Path(source).expanduser()
    if path.is_dir():
        path = path / "metadata.jsonl"
        if not path.is_file():
            raise FileNotFoundError(f"prompt source {str(source)!r} is a folder without metadata.jsonl; pass a .txt "
                                    "or .jsonl file, an imagefolder or a dataset id.")
    prompts: list[str] = []
    if path.is_file():
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if limit is not None and len(prompts) >= limit:
                    break
                if not line.strip():
                    continue
                if path.suffix != ".jsonl":
                    prompts.append(line.strip())
                    continue
                row = json.loads(line)
                if column not in row:
                    raise ValueError(f"{path}:{n} has no column {column!r} (columns: {sorted(row)}); set the prompt column.")
                if isinstance(row[column], str) and row[column].strip():
                    prompts.append(row[column].strip())
    elif path.suffix in (".txt", ".jsonl") or path.parent != Path("."):
        raise FileNotFoundError(f"prompt file {str(source)!r} does not exist.")
    else:
        from datasets import load_dataset

        ds = load_dataset(str(source), split=split, streaming=True)
        for row in ds:
            if limit is not None and len(prompts) >= limit:
                break
            if column not in row:
                raise ValueError(f"dataset {source!r} has no column {column!r} (columns: {sorted(row)}).")
            if isinstance(row[column], str) and row[column].strip():
                prompts.append(row[column].strip())
    if not prompts:
        raise ValueError(f"prompt source {str(source)!r} holds no prompts in column {column!r}.")
    return prompts
