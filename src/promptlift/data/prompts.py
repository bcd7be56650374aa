"""Training prompts from a text file, a JSONL file, an imagefolder's metadata.jsonl or a Hugging Face dataset.

TextCraftor and the refiner train on prompts only; this reads them from wherever they are, one column of any
dataset, keeping order and dropping empty entries.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["read_prompts"]


PROMPT_FILE_SUFFIXES = (".txt", ".jsonl", ".json")


def _file_rows(path: Path):
    """(where, row) of a prompt file: a .txt line (str), a .jsonl line or an item of a .json array (dict or str)."""
    if path.suffix not in PROMPT_FILE_SUFFIXES:
        raise ValueError(f"prompt file {str(path)!r} is no {'/'.join(PROMPT_FILE_SUFFIXES)} file; pass one prompt per "
                         "line (.txt), one JSON object per line (.jsonl) or a JSON array (.json).")
    if path.suffix == ".json":
        items = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(items, list):
            raise ValueError(f"{path} holds a JSON {type(items).__name__}, not an array of prompts or objects.")
        yield from ((f"{path}[{i}]", item) for i, item in enumerate(items))
        return
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                yield f"{path}:{n}", json.loads(line) if path.suffix == ".jsonl" else line.strip()


def read_prompts(source: str | Path, column: str = "prompt", *, split: str = "train", limit: int | None = None) -> list[str]:
    """Prompts of `source`: a .txt file (one per line), a .jsonl file, a .json array or an imagefolder (`column` of
    each row / of metadata.jsonl), or a hub dataset id (`column` of `split`). The first `limit` if given."""
    path = Path(source).expanduser()
    if path.is_dir():
        path = path / "metadata.jsonl"
        if not path.is_file():
            raise FileNotFoundError(f"prompt source {str(source)!r} is a folder without metadata.jsonl; pass a .txt "
                                    "or .jsonl file, an imagefolder or a dataset id.")
    prompts: list[str] = []
    if path.is_file():
        for where, row in _file_rows(path):
            if limit is not None and len(prompts) >= limit:
                break
            if isinstance(row, str):
                text = row
            elif isinstance(row, dict) and column in row:
                text = row[column]
            else:
                columns = sorted(row) if isinstance(row, dict) else type(row).__name__
                raise ValueError(f"{where} has no column {column!r} (columns: {columns}); set the prompt column.")
            if isinstance(text, str) and text.strip():
                prompts.append(text.strip())
    elif path.suffix in PROMPT_FILE_SUFFIXES or (path.parent != Path(".") and path.parent.exists()):
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
