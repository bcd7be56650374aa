"""Human review of a curated set (the last stage of Emu's curation): keep/drop decisions in review.jsonl.

The web app's Review page appends one line per decision; quality-tuning reads them and leaves out the images a
person dropped. The latest decision about an image wins.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["REVIEW_FILE", "read_review"]

REVIEW_FILE = "review.jsonl"


def read_review(curated: str | Path) -> dict[str, bool]:
    """{file_name: kept} from a curated set's review.jsonl ({} when nobody has reviewed it)."""
    path = Path(curated) / REVIEW_FILE
    if not path.is_file():
        return {}
    out = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            out[row["file_name"]] = bool(row["kept"])
        except (json.JSONDecodeError, KeyError, TypeError):
            raise ValueError(f"{path}:{n} is not a review line ({{\"file_name\", \"kept\"}}); fix or remove it.") from None
    return out
