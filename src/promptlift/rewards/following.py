"""Prompt following: does the image hold what the prompt names? GenEval's protocol (Ghosh et al. 2023,
arXiv 2310.11513) on any detector.

An image is correct when, for each object the prompt's metadata includes, the detector finds at least `count` of its
class (the most confident first), `color` colours that many of them (a CLIP zero-shot classification of each box's
crop over GenEval's ten colours), and every one of them stands at `position` relative to the objects of the group it
names (box centres, apart by more than a tenth of the two boxes' summed sides, mostly along that direction); and
finds fewer than `count` of each excluded class (GenEval's counting prompts exclude count + 1: exactly N). Images are
scored 1 or 0; a run's mean per tag (single_object, two_object, counting, colors, position, color_attr) is GenEval's
table, their mean the GenEval score.

The detector is a plug: `OwlDetector` (OWLv2, open-vocabulary, through transformers) by default. GenEval itself uses
a Mask2Former COCO detector from mmdetection at a 0.3 confidence threshold (0.9 for counting): numbers from another
detector are comparable with each other, not with published GenEval scores, and a run's report names its detector.
The world's plug-in puts its attribute judge behind the same interface (judges/following.py), so the rules are
checked where the truth is known.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

import torch

from ..images import tensor_to_images
from .base import Reward, WeightSource, register_reward

__all__ = ["COLORS", "ClipColors", "Detection", "Detector", "GenEvalReward", "OwlDetector", "geneval_verdict",
           "relative_position"]

COLORS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white")
POSITION_MARGIN = 0.1  # of the two boxes' summed sides, before an offset counts as a direction


@dataclass
class Detection:
    """One object found: its class, confidence, box (x0, y0, x1, y1 in pixels, None where the detector gives none)
    and colour (None: classify it from the image)."""

    label: str
    score: float
    box: tuple[float, float, float, float] | None = None
    color: str | None = None


class Detector(Protocol):
    """Finds the objects of `classes[i]` in image i: (B, 3, H, W) in [0, 1] -> per image, its detections above the
    detector's threshold, most confident first."""

    name: str

    def detect(self, images: torch.Tensor, classes: Sequence[Sequence[str]]) -> list[list[Detection]]: ...


def relative_position(a: Detection, b: Detection) -> set[str]:
    """Where `a` stands relative to `b` ("left of", "right of", "above", "below"; none when they overlap within the
    margin), from their boxes' centres."""
    (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = a.box, b.box
    offset = torch.tensor([(ax0 + ax1 - bx0 - bx1) / 2, (ay0 + ay1 - by0 - by1) / 2])
    sides = torch.tensor([ax1 - ax0 + bx1 - bx0, ay1 - ay0 + by1 - by0])
    revised = (offset.abs() - POSITION_MARGIN * sides).clamp_min(0) * offset.sign()
    if revised.abs().max() < 1e-3:
        return set()
    dx, dy = (revised / offset.norm()).tolist()
    return {name for name, hit in (("left of", dx < -0.5), ("right of", dx > 0.5), ("above", dy < -0.5),
                                   ("below", dy > 0.5)) if hit}


def geneval_verdict(metadata: dict, found: dict[str, list[Detection]], colors) -> tuple[bool, list[str]]:
    """(correct, why not) of one image under GenEval's rules; `found`: {class: its detections, most confident first};
    `colors(detections, class) -> [colour of each]` classifies the detections that have none."""
    correct, reasons, groups = True, [], []
    for want in metadata.get("include", []):
        cls, count = want["class"], want["count"]
        objects, matched = found.get(cls, [])[:count], True
        if len(objects) < count:
            matched = False
            reasons.append(f"expected {cls} >= {count}, found {len(objects)}")
        else:
            if "color" in want:
                seen = colors(objects, cls)
                if seen.count(want["color"]) < count:
                    matched = False
                    reasons.append(f"expected {want['color']} {cls} >= {count}, found {seen.count(want['color'])}")
            if "position" in want and matched:
                relation, group = want["position"]
                targets = groups[group] if group < len(groups) else None
                if targets is None or any(relation not in relative_position(o, t) for o in objects for t in targets):
                    matched = False
                    reasons.append(f"expected {cls} {relation} the {metadata['include'][group]['class']}")
        groups.append(objects if matched else None)
        correct = correct and matched
    for unwanted in metadata.get("exclude", []):
        if len(found.get(unwanted["class"], [])) >= unwanted["count"]:
            correct = False
            reasons.append(f"expected {unwanted['class']} < {unwanted['count']}, found {len(found[unwanted['class']])}")
    return correct, reasons


def _pil(image: torch.Tensor):
    """(3, H, W) in [0, 1] -> a PIL image."""
    return tensor_to_images(image[None])[0]


class OwlDetector:
    """OWLv2 (Minderer et al. 2023) through transformers: open-vocabulary boxes for "a photo of a CLASS" queries,
    above `threshold` (GenEval's detector threshold, 0.3, by default)."""

    def __init__(self, model: str = "google/owlv2-base-patch16-ensemble", threshold: float = 0.3, max_objects: int = 16):
        from transformers import Owlv2ForObjectDetection, Owlv2Processor

        self.name = f"OWLv2 ({model}), threshold {threshold}"
        self.processor = Owlv2Processor.from_pretrained(model)
        self.model = Owlv2ForObjectDetection.from_pretrained(model).eval().requires_grad_(False)
        self.threshold, self.max_objects = threshold, max_objects

    @torch.no_grad()
    def detect(self, images: torch.Tensor, classes: Sequence[Sequence[str]]) -> list[list[Detection]]:
        out = []
        for image, names in zip(images, classes):
            names = list(names)
            inputs = self.processor(text=[[f"a photo of a {n}" for n in names]], images=_pil(image), return_tensors="pt")
            outputs = self.model(**{k: v.to(self.model.device) for k, v in inputs.items()})
            size = max(image.shape[-2:])  # OWLv2 pads the image to a square of its longer side
            result = self.processor.post_process_grounded_object_detection(
                outputs, threshold=self.threshold, target_sizes=torch.tensor([[size, size]]))[0]
            h, w = image.shape[-2:]  # boxes in the image's pixels, cut at its edges (not the padding's)
            limits = torch.tensor([w, h, w, h], dtype=torch.float32)
            found = [Detection(names[int(label)], float(score), tuple(torch.minimum(box.float().clamp_min(0), limits).tolist()))
                     for score, label, box in zip(result["scores"], result["labels"], result["boxes"])]
            found.sort(key=lambda d: -d.score)
            out.append(found[: self.max_objects * len(names)])
        return out


class ClipColors:
    """GenEval's colour check: each box's crop classified zero-shot by CLIP over `COLORS` ("a photo of a COLOR
    CLASS")."""

    def __init__(self, model: str = "openai/clip-vit-large-patch14"):
        from transformers import CLIPModel, CLIPProcessor

        self.name = f"CLIP ({model})"
        self.processor = CLIPProcessor.from_pretrained(model)
        self.model = CLIPModel.from_pretrained(model).eval().requires_grad_(False)

    @torch.no_grad()
    def __call__(self, image: torch.Tensor, objects: list[Detection], cls: str) -> list[str]:
        if not objects:
            return []
        h, w = image.shape[-2:]
        crops = []
        for o in objects:
            x0, y0, x1, y1 = (int(round(v)) for v in o.box)
            x0, y0 = min(max(x0, 0), w - 1), min(max(y0, 0), h - 1)  # at least one pixel, inside the image
            x1, y1 = min(max(x1, x0 + 1), w), min(max(y1, y0 + 1), h)
            crops.append(_pil(image[:, y0:y1, x0:x1]))
        inputs = self.processor(text=[f"a photo of a {c} {cls}" for c in COLORS], images=crops, return_tensors="pt",
                                padding=True)
        logits = self.model(**{k: v.to(self.model.device) for k, v in inputs.items()}).logits_per_image
        return [COLORS[i] for i in logits.argmax(-1).tolist()]


class GenEvalReward(Reward):
    """1 where the image passes GenEval's rules for its prompt's metadata, else 0 (not differentiable). `metadata`:
    {prompt: GenEval metadata}; a prompt without any is refused by name. `last_details` keeps why each of the last
    batch's images failed ({"reasons": [...]})."""

    differentiable = False
    score_range = (0.0, 1.0)

    def __init__(self, metadata: dict[str, dict], detector: Detector, colors=None):
        super().__init__()
        self.metadata, self.detector, self.colors = metadata, detector, colors
        self.hold(detector, colors)
        self.judged_with = f"GenEval's rules on {detector.name}" + (
            f"; colours by {getattr(colors, 'name', type(colors).__name__)}" if colors else "")

    def forward(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        self.check_inputs(images, prompts)
        missing = [p for p in prompts if p not in self.metadata]
        if missing:
            raise ValueError(f"the geneval judge has no GenEval metadata for the prompt {missing[0]!r}; score GenEval's "
                             "prompts (`--prompts geneval`), or give the metadata file of yours (`--reward_option "
                             "geneval.metadata=FILE`).")
        wanted = [sorted({o["class"] for k in ("include", "exclude") for o in self.metadata[p].get(k, [])})
                  for p in prompts]
        found = self.detector.detect(images, wanted)
        scores, self.last_details = [], []
        for image, prompt, detections in zip(images, prompts, found):
            by_class: dict[str, list[Detection]] = {}
            for d in detections:
                by_class.setdefault(d.label, []).append(d)

            def colors(objects, cls, image=image):
                unknown = [o for o in objects if o.color is None]
                guessed = iter(self.colors(image, unknown, cls) if unknown else [])
                return [o.color if o.color is not None else next(guessed) for o in objects]

            correct, reasons = geneval_verdict(self.metadata[prompt], by_class, colors)
            scores.append(float(correct))
            self.last_details.append({"reasons": reasons})
        return torch.tensor(scores)


def read_geneval_metadata(path: str | Path | None) -> dict[str, dict]:
    """{prompt: metadata} of GenEval's evaluation_metadata.jsonl at `path`."""
    if path is None or not Path(path).is_file():
        raise ValueError(f"GenEval's metadata file {str(path) if path else '(none given)'!r} is missing; pass "
                         "`--reward_option geneval.metadata=FILE` (evaluation_metadata.jsonl; `promptlift eval "
                         "--prompts geneval --prompts_path FILE` passes it).")
    rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    return {r["prompt"]: r for r in rows}


def _geneval_sources(detector: str = "google/owlv2-base-patch16-ensemble", colors: str = "openai/clip-vit-large-patch14",
                     **_) -> list[WeightSource]:
    return [WeightSource("the OWLv2 detector", detector, "download it once online, or pass `--reward_option "
                         "geneval.detector=PATH`"),
            WeightSource("CLIP for the colour check", colors, "download it once online, or pass `--reward_option "
                         "geneval.colors=PATH`")]


@register_reward("geneval", help="GenEval's rules (object, count, colour, position) on an OWLv2 detector; 0/1 per image.",
                 sources=_geneval_sources, eval_only=True)
def geneval_reward(metadata: str | None = None, detector: str = "google/owlv2-base-patch16-ensemble",
                   colors: str = "openai/clip-vit-large-patch14", threshold: float = 0.3) -> GenEvalReward:
    return GenEvalReward(read_geneval_metadata(metadata), OwlDetector(detector, float(threshold)), ClipColors(colors))
