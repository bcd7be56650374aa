"""Prompt sets: any JSONL or text file, loaders for the public benchmarks, and those plug-ins register (the world's).

Every set loads as a list of records ``{"id", "prompt", "expected"?, "category"?, "meta"?}``. Public
benchmark files are never shipped: loaders read a local copy (`path`) or, online, their original address.
"""

from __future__ import annotations

import csv
import io
import json
import re
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..registry import check_registration, load_plugins
from ..files import read_utf8

__all__ = ["PROMPT_SETS", "PromptSetSpec", "load_prompt_set", "prompt_set_specs", "register_prompt_set"]

CACHE = Path("~/.cache/promptlift/benchmarks").expanduser()


@dataclass(frozen=True)
class PromptSetSpec:
    """A named prompt set: a loader `(text_or_path, subset) -> records`, its original address, and help."""

    name: str
    loader: Callable[..., list[dict]]
    help: str
    url: str | None = None  # original address ({subset} filled in); None: a local path is needed
    default_subset: str | None = None
    builtin: bool = False  # made by promptlift itself (the world's sets): no file at all


PROMPT_SETS: dict[str, PromptSetSpec] = {}


def register_prompt_set(name: str, *, help: str, url: str | None = None, default_subset: str | None = None,
                        builtin: bool = False):
    """Register a loader under `name`, validated now."""

    def decorator(loader):
        check_registration("prompt set", PROMPT_SETS, name, loader, help)
        PROMPT_SETS[name] = PromptSetSpec(name, loader, help, url, default_subset, builtin)
        return loader

    return decorator


def prompt_set_specs() -> list[PromptSetSpec]:
    """Every registered prompt set, plug-ins' included."""
    load_plugins()
    return list(PROMPT_SETS.values())


def _read_source(spec: PromptSetSpec, path: str | None, subset: str | None) -> Path:
    """The benchmark file: `path` (a file, or a folder holding it), else downloaded once into the cache."""
    url = spec.url.format(subset=subset) if spec.url else None
    if path is not None:
        p = Path(path).expanduser()
        if p.is_dir() and url and (p / Path(url).name).exists():
            p = p / Path(url).name
        if not p.exists():
            raise FileNotFoundError(f"prompt set {spec.name!r}: {str(p)!r} does not exist; pass the benchmark file "
                                    f"(original address: {url or 'see the README of the benchmark'}).")
        return p
    if url is None:
        raise FileNotFoundError(f"prompt set {spec.name!r} has no single file to download; pass `--prompts_path`.")
    cached = CACHE / spec.name / Path(url).name
    if not cached.is_file():
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                data = response.read()
        except OSError as e:
            raise FileNotFoundError(f"prompt set {spec.name!r}: could not download {url} ({e}); pass "
                                    "`--prompts_path` with a local copy of the file.") from e
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_bytes(data)
    return cached


def load_prompt_set(name_or_file: str, path: str | None = None, subset: str | None = None,
                    num_prompts: int | None = None) -> list[dict]:
    """Records of a named set or of a JSONL file of {"prompt", "expected"?}; the first `num_prompts` if given."""
    load_plugins()
    if name_or_file in PROMPT_SETS:
        spec = PROMPT_SETS[name_or_file]
        subset = subset or spec.default_subset
        subsets = [s.strip() for s in str(subset).split(",") if s.strip()] if subset else [subset]
        if len(subsets) > 1 and not (spec.url and "{subset}" in spec.url):
            raise ValueError(f"prompt set {name_or_file!r} takes one subset, not {subset!r}.")
        if len(subsets) > 1:  # a file per subset (T2I-CompBench's categories): each prompt's id names its subset
            records = [{**r, "id": f"{s}-{r['id']}"} for s in subsets for r in spec.loader(_read_source(spec, path, s), s)]
        else:
            records = spec.loader(None if spec.builtin else _read_source(spec, path, subset), subset)
    elif Path(name_or_file).suffix == ".txt":
        records = [{"id": str(n - 1), "prompt": line.strip()}
                   for n, line in enumerate(read_utf8(Path(name_or_file)).splitlines(), 1) if line.strip()]
    elif Path(name_or_file).suffix == ".jsonl" or Path(name_or_file).is_file():
        records = _jsonl_records(Path(name_or_file))
    else:
        raise ValueError(f"unknown prompt set {name_or_file!r}: give a .jsonl or .txt file or one of "
                         f"{', '.join(sorted(PROMPT_SETS))}.")
    if not records:
        raise ValueError(f"prompt set {name_or_file!r} is empty.")
    _check_unique_ids(records, name_or_file)
    return records[:num_prompts] if num_prompts else records


def _check_unique_ids(records: list[dict], source: str, lines: list[int] | None = None) -> None:
    """Two prompts of one id would write one image file and two score rows for it: refused, naming both."""
    seen: dict[str, int] = {}
    for i, record in enumerate(records):
        key = str(record["id"])
        if key in seen:
            where = (lambda j: f"line {lines[j]}") if lines else (lambda j: f"prompt {j + 1}")
            raise ValueError(f"prompt set {source!r}: {where(i)} has the id {key!r} of {where(seen[key])}; give each "
                             "prompt its own id (or leave \"id\" out: the line number is used).")
        seen[key] = i


def _jsonl_records(path: Path) -> list[dict]:
    if not path.is_file():
        raise FileNotFoundError(f"prompt file {str(path)!r} does not exist.")
    records, lines = [], []
    for n, line in enumerate(read_utf8(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{n} is not valid JSON ({e.msg}); each line must be {{\"prompt\": ...}}.") from None
        if not isinstance(row, dict) or not isinstance(row.get("prompt"), str) or not row["prompt"].strip():
            raise ValueError(f"{path}:{n} has no non-empty \"prompt\" string.")
        records.append({**row, "id": str(row.get("id", n - 1))})
        lines.append(n)
    _check_unique_ids(records, str(path), lines)
    return records


# ---------------------------------------------------------------------------------------------
# Public benchmarks


@register_prompt_set("partiprompts", help="PartiPrompts (Yu et al. 2022): 1632 prompts, 12 categories.",
                     url="https://raw.githubusercontent.com/google-research/parti/main/PartiPrompts.tsv")
def _parti(path: Path, subset) -> list[dict]:
    rows = csv.DictReader(io.StringIO(read_utf8(path)), delimiter="\t")
    return [{"id": str(i), "prompt": r["Prompt"], "category": r["Category"], "meta": {"challenge": r["Challenge"]}}
            for i, r in enumerate(rows) if subset in (None, r["Category"], r["Challenge"])]


@register_prompt_set("drawbench", help="DrawBench (Saharia et al. 2022): 200 prompts, 11 categories.",
                     url="https://raw.githubusercontent.com/mwomick/VaReSynth/main/data/DrawBench.csv")
def _drawbench(path: Path, subset) -> list[dict]:
    rows = csv.DictReader(io.StringIO(read_utf8(path)))
    return [{"id": str(i), "prompt": r["Prompts"], "category": r["Category"].strip()}
            for i, r in enumerate(rows) if subset in (None, r["Category"].strip())]


@register_prompt_set("t2i-compbench", help="T2I-CompBench val split of its categories (subset: comma-separated, default color).",
                     url="https://raw.githubusercontent.com/Karine-Huang/T2I-CompBench/main/examples/dataset/{subset}_val.txt",
                     default_subset="color")
def _t2i(path: Path, subset) -> list[dict]:
    return [{"id": str(i), "prompt": line.strip(), "category": subset}
            for i, line in enumerate(read_utf8(path).splitlines()) if line.strip()]


@register_prompt_set("geneval", help="GenEval metadata (Ghosh et al. 2023): 553 prompts with include/exclude, 6 tags.",
                     url="https://raw.githubusercontent.com/djghosh13/geneval/main/prompts/evaluation_metadata.jsonl")
def _geneval(path: Path, subset) -> list[dict]:
    rows = [json.loads(line) for line in read_utf8(path).splitlines() if line.strip()]
    return [{"id": str(i), "prompt": r["prompt"], "category": r["tag"], "meta": {"geneval": r}}
            for i, r in enumerate(rows) if subset in (None, r["tag"])]


@register_prompt_set("dpg-bench", help="DPG-Bench (ELLA): 1065 dense prompts; a folder of <item_id>.txt or a JSONL of {item_id, prompt}.")
def _dpg(path: Path, subset) -> list[dict]:
    if path.is_dir():
        rows = [{"item_id": f.stem, "prompt": read_utf8(f).strip()} for f in sorted(path.glob("*.txt"))]
    else:
        rows = [json.loads(line) for line in read_utf8(path).splitlines() if line.strip()]
    return [{"id": str(r["item_id"]), "prompt": r["prompt"], "category": re.sub(r"\d+$", "", str(r["item_id"])) or "dpg"}
            for r in rows]


def _pae(source: str):
    def loader(path: Path, subset) -> list[dict]:
        if path.suffix == ".npy":  # the original release: an array of strings
            import numpy as np

            rows = [{"idx": i, "prompt": str(p)} for i, p in enumerate(np.load(path, allow_pickle=False))]
        else:
            rows = [json.loads(line) for line in read_utf8(path).splitlines() if line.strip()]
        return [{"id": str(r.get("idx", i)), "prompt": r["prompt"], "category": source} for i, r in enumerate(rows)]

    return loader


for _source, _file in (("coco", "COCO"), ("diffusiondb", "diffusiondb"), ("lexica", "lexica")):
    register_prompt_set(f"pae-{_source}", help=f"Short user prompts: PAE's {_file} test 1k (.npy original, or JSONL).",
                        url=f"https://github.com/Mowenyii/PAE/raw/main/data/{_file}_test_1k.npy")(_pae(_source))
