"""T2I-CompBench (Huang et al. 2023, arXiv 2307.06350): compositional prompts judged by the method of their category.

- colour, shape, texture (attribute binding): each noun phrase of the prompt asked as a question ("a green bench?")
  of BLIP-VQA; the image scores the product of the probabilities of "yes".
- spatial: the two objects either side of the relation ("a girl on the left of a horse") found by a detector; the
  most confident box of each scored by T2I-CompBench's rule (`spatial_score`), 0 when either is missing (or the
  prompt names no relation).
- non-spatial: the CLIP cosine of image and prompt (ViT-B/32, as T2I-CompBench's CLIPScore).
- complex: the mean of the three ("3-in-1"), the spatial one only where the prompt names a relation.

T2I-CompBench's own detector is UniDet and its BLIP-VQA the LAVIS checkpoint; here the detector is a plug
(`OwlDetector` by default) and BLIP-VQA is transformers' `Salesforce/blip-vqa-base`: scores compare runs with each
other, not with published T2I-CompBench numbers. Noun phrases are spaCy's noun chunks (`en_core_web_sm`) as
T2I-CompBench's. Without spaCy, a prompt of the two-object form ("a green bench and a blue bowl": 237 of the 300
colour val prompts, 214 shape, 197 texture) is split at its "and", which gives the same two phrases; the other
attribute prompts (sentences) are refused unless `split_sentences` cuts them at commas, "and" and "with" (an
approximation, named in the run), and the complex category always needs spaCy.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import torch

from .base import Reward, WeightSource, register_reward
from .following import Detection, Detector

__all__ = ["CATEGORIES", "RELATIONS", "TWO_OBJECTS", "CompBenchReward", "noun_phrases", "read_categories",
           "spatial_relation", "spatial_score"]

# a category's method: attribute (BLIP-VQA on noun phrases), spatial (detector), clip (CLIP cosine), or all three
CATEGORIES = {"color": ("attribute",), "shape": ("attribute",), "texture": ("attribute",), "spatial": ("spatial",),
              "non_spatial": ("clip",), "complex": ("attribute", "spatial", "clip")}
RELATIONS = ("on side of", "next to", "near", "on the left of", "on the right of", "on the bottom of", "on the top of",
             "on top of")
IOU_THRESHOLD = 0.1  # boxes that overlap more stand less clearly apart: the score falls as IOU_THRESHOLD / IoU
NEAR_DISTANCE = 150 / 512  # "next to": centres closer than this share of the image side (150 px of 512) score 1
_ARTICLE = re.compile(r"^(a|an|the|some|two|one)\s+", re.IGNORECASE)
_SPLIT = re.compile(r"\s*(?:,|\band\b|\bwith\b)\s*", re.IGNORECASE)
TWO_OBJECTS = re.compile(r"^(an?|the)( [\w-]+){1,3} and (an?|the)( [\w-]+){1,3}\.?$", re.IGNORECASE)


def load_spacy():
    """spaCy's `en_core_web_sm`, or None where spaCy or the model is not installed."""
    try:
        import spacy

        return spacy.load("en_core_web_sm")
    except (ImportError, OSError):
        return None


def noun_phrases(prompt: str, nlp=None) -> list[str]:
    """The prompt's noun phrases: spaCy's noun chunks with `nlp`; else a two-object prompt's two sides of its "and",
    and any other prompt cut at commas, "and" and "with" (an approximation of the chunks)."""
    if nlp is not None:
        return [chunk.text for chunk in nlp(prompt).noun_chunks]
    text = prompt.strip().rstrip(".")
    if TWO_OBJECTS.match(prompt.strip()):
        return [p.strip() for p in re.split(r"\band\b", text, flags=re.IGNORECASE)]
    return [p for p in _SPLIT.split(text) if p]


def _head(phrase: str, nlp=None) -> str:
    """The object a phrase names: its noun chunk's root with `nlp`, else its last word."""
    if nlp is not None:
        chunks = list(nlp(phrase).noun_chunks)
        if chunks:
            return chunks[-1].root.text
    words = _ARTICLE.sub("", phrase.strip().rstrip(".")).split()
    return words[-1] if words else ""


def spatial_relation(prompt: str, nlp=None) -> tuple[str, str, str] | None:
    """(object, relation, other) of a prompt naming one of `RELATIONS` ("on top of" read as "on the top of"), the
    objects the nouns nearest either side; None when it names none."""
    lowered = prompt.lower()
    for relation in RELATIONS:
        at = lowered.find(f" {relation} ")
        if at < 0:
            continue
        before, after = prompt[:at], prompt[at + len(relation) + 2:]
        if nlp is not None:  # the last noun chunk before, the first after
            left, right = list(nlp(before).noun_chunks), list(nlp(after).noun_chunks)
            if not left or not right:
                return None
            a, b = left[-1].root.text, right[0].root.text
        else:
            a, b = _head(before), _head(re.split(r"[,.]| and ", after)[0])
        return a, ("on the top of" if relation == "on top of" else relation), b
    return None


def _iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def spatial_score(relation: str, a: Detection, b: Detection, image_size: float) -> float:
    """T2I-CompBench's position score of `a` `relation` `b` (boxes in pixels of an image of side `image_size`): 1
    when the centres are apart mostly in the named direction and the boxes overlap by an IoU under `IOU_THRESHOLD`
    (IOU_THRESHOLD / IoU when they overlap more), 0 in the wrong direction; "next to", "near", "on side of": 1 when
    the centres are within `NEAR_DISTANCE` of the image side in x or y, else that distance over the larger offset."""
    ax, ay = (a.box[0] + a.box[2]) / 2, (a.box[1] + a.box[3]) / 2
    bx, by = (b.box[0] + b.box[2]) / 2, (b.box[1] + b.box[3]) / 2
    dx, dy = bx - ax, by - ay  # from a to b
    if relation in ("next to", "near", "on side of"):
        near = NEAR_DISTANCE * image_size
        return 1.0 if abs(dx) < near or abs(dy) < near else near / max(abs(dx), abs(dy))
    along, across = {"on the left of": (dx, dy), "on the right of": (-dx, dy),
                     "on the top of": (dy, dx), "on the bottom of": (-dy, dx)}[relation]
    if along <= 0 or abs(along) <= abs(across):
        return 0.0
    iou = _iou(a.box, b.box)
    return 1.0 if iou < IOU_THRESHOLD else IOU_THRESHOLD / iou


class CompBenchReward(Reward):
    """T2I-CompBench's score of each image by its prompt's category (`categories`: {prompt: category}); not
    differentiable. `vqa` answers yes-probabilities (`BlipVQA`), `detector` finds objects, `clip` is a CLIP score
    reward (100 x cosine); each is needed only by the categories that use it. `last_details` keeps the last batch's
    parts per image ({"parts": {"attribute", "spatial", "clip"}})."""

    differentiable = False
    score_range = (-1.0, 1.0)  # CLIP's cosine (non-spatial, complex) may be negative; the others are in [0, 1]

    def __init__(self, categories: dict[str, str], vqa=None, detector: Detector | None = None, clip: Reward | None = None,
                 nlp=None, split_sentences: bool = False):
        super().__init__()
        unknown = sorted({c for c in categories.values() if c not in CATEGORIES})
        if unknown:
            raise ValueError(f"T2I-CompBench's judge scores the categories {', '.join(CATEGORIES)}; not {', '.join(unknown)}.")
        spacy = "pip install spacy && python -m spacy download en_core_web_sm"
        if nlp is None and "complex" in categories.values():
            raise ValueError(f"T2I-CompBench's complex prompts need spaCy's noun chunks: {spacy}.")
        sentences = [p for p, c in categories.items() if c in ("color", "shape", "texture") and not TWO_OBJECTS.match(p)]
        if nlp is None and sentences and not split_sentences:
            raise ValueError(f"{len(sentences)} attribute prompts are sentences (e.g. {sentences[0]!r}) whose noun "
                             f"phrases T2I-CompBench reads with spaCy: {spacy}; or cut them at commas, 'and' and "
                             "'with' (an approximation): --reward_option t2i-compbench.split_sentences=true.")
        phrases = "spaCy's noun chunks" if nlp is not None else (
            "two-object prompts split at 'and'" + ("; sentences cut at commas, 'and', 'with'" if sentences else ""))
        used = [f"{what} by {model.name}" for what, model in (("attributes", vqa), ("positions", detector))
                if model is not None]
        self.judged_with = "T2I-CompBench's methods: " + "; ".join(
            [*used, *(["non-spatial by CLIP cosine"] if clip is not None else []), f"noun phrases: {phrases}"])
        self.categories, self.vqa, self.detector, self.clip, self.nlp = categories, vqa, detector, clip, nlp
        self.hold(vqa, detector)

    @torch.no_grad()
    def forward(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        self.check_inputs(images, prompts)
        missing = [p for p in prompts if p not in self.categories]
        if missing:
            raise ValueError(f"the t2i-compbench judge has no category for the prompt {missing[0]!r}; score "
                             "T2I-CompBench's prompts (`--prompts t2i-compbench --prompts_subset color,...`).")
        scores, self.last_details = [], []
        for image, prompt in zip(images, prompts):
            parts = {}
            for method in CATEGORIES[self.categories[prompt]]:
                if method == "attribute":
                    parts[method] = float(torch.tensor(self.vqa.yes_probability(
                        image, [f"{p}?" for p in noun_phrases(prompt, self.nlp)] or [f"{prompt}?"])).prod())
                elif method == "clip":
                    parts[method] = float(self.clip(image[None], [prompt])[0]) / 100.0
                elif (relation := spatial_relation(prompt, self.nlp)) is not None:
                    parts[method] = self._spatial(image, *relation)
                elif len(CATEGORIES[self.categories[prompt]]) == 1:  # a spatial prompt naming no relation
                    parts[method] = 0.0
            self.last_details.append({"parts": parts})
            scores.append(sum(parts.values()) / len(parts))
        return torch.tensor(scores)

    def _spatial(self, image: torch.Tensor, a: str, relation: str, b: str) -> float:
        found = self.detector.detect(image[None], [[a, b]])[0]
        first = {}
        for d in found:  # most confident first
            first.setdefault(d.label, d)
        if a not in first or b not in first:
            return 0.0
        return spatial_score(relation, first[a], first[b], float(max(image.shape[-2:])))


def read_categories(prompts: str | Path | None, subset: str | None = None) -> dict[str, str]:
    """{prompt: category} of T2I-CompBench's val files CATEGORY_val.txt in the folder `prompts` (or, for one category,
    that file), the categories `subset` names (comma-separated, default color)."""
    names = _categories(subset)
    path = Path(prompts) if prompts else None
    if path is None or not path.exists() or (path.is_file() and len(names) > 1):
        raise ValueError(f"the t2i-compbench judge reads each prompt's category from T2I-CompBench's prompt files; "
                         f"{str(prompts)!r} is not their folder: pass `--reward_option t2i-compbench.prompts=FOLDER` "
                         "(examples/dataset of its repository; eval passes `--prompts_path`).")
    categories = {}
    for name in names:
        file = path if path.is_file() else path / f"{name}_val.txt"
        if not file.is_file():
            raise ValueError(f"T2I-CompBench's {name} prompts {str(file)!r} are missing; pass the folder that holds "
                             f"{name}_val.txt.")
        categories.update({line.strip(): name for line in file.read_text(encoding="utf-8").splitlines() if line.strip()})
    return categories


def _categories(subset: str | None) -> list[str]:
    """The categories a comma-separated `subset` names (default color)."""
    return [s.strip() for s in (subset or "color").split(",") if s.strip()]


def _needs(subset: str | None) -> set[str]:
    """The methods (attribute, spatial, clip) the categories of `subset` use."""
    return {method for name in _categories(subset) for method in CATEGORIES.get(name, ())}


def _compbench_sources(subset: str | None = None, vqa: str = "Salesforce/blip-vqa-base",
                       detector: str = "google/owlv2-base-patch16-ensemble", clip: str = "openai/clip-vit-base-patch32",
                       **_) -> list[WeightSource]:
    needs = _needs(subset)
    wanted = [("attribute", "BLIP-VQA", vqa, "vqa"), ("spatial", "the OWLv2 detector", detector, "detector"),
              ("clip", "CLIP", clip, "clip")]
    return [WeightSource(what, where, f"download it once online, or pass `--reward_option t2i-compbench.{key}=PATH`")
            for method, what, where, key in wanted if method in needs]


@register_reward("t2i-compbench", help="T2I-CompBench's score by category: BLIP-VQA on noun phrases, a detector's "
                                       "positions, CLIP.", sources=_compbench_sources,
                 eval_only=True)
def compbench_reward(prompts: str | None = None, subset: str | None = None, vqa: str = "Salesforce/blip-vqa-base",
                     detector: str = "google/owlv2-base-patch16-ensemble", clip: str = "openai/clip-vit-base-patch32",
                     threshold: float = 0.3, split_sentences: bool = False) -> CompBenchReward:
    """`prompts`: T2I-CompBench's prompt files (a folder of CATEGORY_val.txt, or the one category's file); `subset`:
    its categories, comma-separated (default color). Eval passes both."""
    from .clip import CLIPScore, load_clip
    from .following import OwlDetector
    from .questions import BlipVQA

    categories = read_categories(prompts, subset)
    needs = _needs(subset)
    return CompBenchReward(categories, vqa=BlipVQA(vqa) if "attribute" in needs else None,
                           detector=OwlDetector(detector, float(threshold)) if "spatial" in needs else None,
                           clip=CLIPScore(*load_clip(clip)) if "clip" in needs else None,
                           nlp=load_spacy(), split_sentences=split_sentences)
