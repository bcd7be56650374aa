"""The scene grammar: content attributes, quality factors, layout, and the ground-truth aesthetic score."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

__all__ = [
    "SETTINGS",
    "KINDS",
    "COLORS",
    "COUNTS",
    "ATTRIBUTES",
    "FACTORS",
    "Quality",
    "Scene",
    "aesthetic_score",
    "sample_scene",
    "scene_seed",
]

SETTINGS = ("day", "sunset", "night", "snow", "beach")
KINDS = ("ball", "box", "tree", "house", "boat", "flower")
COLORS = ("red", "orange", "yellow", "green", "blue", "purple", "white", "black")
COUNTS = (1, 2, 3, 4)
ATTRIBUTES = {"setting": SETTINGS, "kind": KINDS, "color": COLORS, "count": COUNTS}

# Quality factors, each in [0, 1]. For lighting, detail, harmony and framing 1 is good;
# for clutter and artifacts 1 is bad.
FACTORS = ("lighting", "detail", "harmony", "clutter", "framing", "artifacts")
_BAD_HIGH = ("clutter", "artifacts")
# How much each factor weighs in the ground-truth aesthetic score (sums to 1).
_WEIGHTS = {"lighting": 0.22, "detail": 0.14, "harmony": 0.20, "clutter": 0.14, "framing": 0.15, "artifacts": 0.15}


@dataclass(frozen=True)
class Quality:
    """How good a render looks, factor by factor (all in [0, 1])."""

    lighting: float  # 0 flat colours .. 1 soft shading, shadows and highlights
    detail: float  # 0 bare silhouettes .. 1 textured objects and ground
    harmony: float  # 0 clashing tint over the background .. 1 coherent palette
    clutter: float  # 0 clean .. 1 many distracting specks
    framing: float  # 0 cut off at the edges and crowded .. 1 balanced
    artifacts: float  # 0 clean .. 1 heavy noise and blur

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"quality factor `{f.name}` must be in [0, 1], got {v}.")

    def goodness(self) -> dict[str, float]:
        """Each factor oriented so that 1 is good."""
        return {k: (1.0 - v if k in _BAD_HIGH else v) for k, v in asdict(self).items()}

    @classmethod
    def best(cls) -> Quality:
        """The best quality the world renders (score 10)."""
        return cls(lighting=1.0, detail=1.0, harmony=1.0, clutter=0.0, framing=1.0, artifacts=0.0)


def aesthetic_score(quality: Quality) -> float:
    """The ground-truth aesthetic score in [1, 10]: 1 + 9 x the weighted goodness of the factors."""
    goodness = quality.goodness()
    return 1.0 + 9.0 * sum(_WEIGHTS[k] * goodness[k] for k in FACTORS)


@dataclass(frozen=True)
class Scene:
    """One scene: its content, its quality, where its objects stand, and the seed of its pixel noise.

    `boxes` are (x0, y0, x1, y1) in image fractions, one per object; they may leave the frame
    when framing is poor, but every object stays mostly visible.
    """

    setting: str
    kind: str
    color: str
    count: int
    quality: Quality
    boxes: tuple[tuple[float, float, float, float], ...]
    seed: int

    @property
    def attributes(self) -> dict:
        return {"setting": self.setting, "kind": self.kind, "color": self.color, "count": self.count}

    @property
    def aesthetic(self) -> float:
        return aesthetic_score(self.quality)

    def to_dict(self) -> dict:
        return {**self.attributes, "quality": asdict(self.quality), "aesthetic": round(self.aesthetic, 4),
                "boxes": [list(b) for b in self.boxes], "seed": self.seed}

    @classmethod
    def from_dict(cls, d: dict) -> Scene:
        return cls(d["setting"], d["kind"], d["color"], int(d["count"]), Quality(**d["quality"]),
                   tuple(tuple(b) for b in d["boxes"]), int(d["seed"]))


# Seed streams: datasets (training data) and prompt sets (evaluation) never share scene seeds by design.
STREAMS = {"dataset": 0, "prompts": 1}


def scene_seed(base_seed: int, index: int, stream: str = "dataset") -> int:
    """The seed of scene `index` of a set drawn with `base_seed` from `stream` (independent per scene)."""
    return int(np.random.SeedSequence([base_seed, index, STREAMS[stream]]).generate_state(1, dtype=np.uint32)[0])


def _sample_quality(rng: np.random.Generator) -> Quality:
    """Mostly mediocre, with a thin tail of very good scenes: factors share a latent 'skill' skewed low."""
    skill = rng.beta(2.0, 3.0)
    own = rng.beta(2.0, 2.0, size=len(FACTORS))
    good = np.clip(0.75 * skill + 0.25 * own, 0.0, 1.0)
    values = {k: float(1.0 - g if k in _BAD_HIGH else g) for k, g in zip(FACTORS, good)}
    return Quality(**{k: round(v, 4) for k, v in values.items()})


# Object size (fraction of the image) by count: >= 16 px of 64 at every count.
_SIZE = {1: (0.40, 0.50), 2: (0.34, 0.40), 3: (0.28, 0.32), 4: (0.26, 0.30)}
# Balanced slot centres (x, baseline y) by count; 4 objects stand in two rows.
_SLOTS = {
    1: [(0.50, 0.88)],
    2: [(0.29, 0.88), (0.71, 0.88)],
    3: [(0.19, 0.90), (0.50, 0.90), (0.81, 0.90)],
    4: [(0.28, 0.62), (0.72, 0.62), (0.28, 0.96), (0.72, 0.96)],
}


def _sample_boxes(rng: np.random.Generator, count: int, kind: str, framing: float) -> tuple:
    """Object boxes: balanced slots when framing is good; shifted to one side and cut off when poor."""
    lo, hi = _SIZE[count]
    size = rng.uniform(lo, hi)
    tall = 1.25 if kind in ("tree", "house") else 1.0
    w, h = size, min(size * tall, 0.48 if count == 4 else 0.62)
    badness = 1.0 - framing
    # Poor framing pushes the whole group towards one edge (so objects are cut off) and squeezes it.
    direction = rng.choice([-1.0, 1.0])
    shift = direction * badness * (0.5 * w + 0.02)
    squeeze = 1.0 - 0.35 * badness
    boxes = []
    for cx, base in _SLOTS[count]:
        x = 0.5 + (cx - 0.5) * squeeze + shift + rng.normal(0, 0.01)
        y = base + rng.normal(0, 0.01) + (badness * 0.04 if count < 4 else 0.0)
        boxes.append((round(x - w / 2, 4), round(y - h, 4), round(x + w / 2, 4), round(y, 4)))
    return tuple(boxes)


def sample_scene(seed: int, quality: Quality | None = None, **attributes) -> Scene:
    """Draw a scene from `seed`; the same seed gives the same scene. Fix attributes or quality by keyword."""
    unknown = set(attributes) - set(ATTRIBUTES)
    if unknown:
        raise ValueError(f"unknown scene attribute(s) {sorted(unknown)}; valid: {list(ATTRIBUTES)}.")
    rng = np.random.default_rng(seed)
    drawn = {name: values[rng.integers(len(values))] for name, values in ATTRIBUTES.items()}
    for name, value in attributes.items():
        if value not in ATTRIBUTES[name]:
            raise ValueError(f"`{name}` must be one of {list(ATTRIBUTES[name])}, got {value!r}.")
        drawn[name] = value
    sampled_quality = _sample_quality(rng)
    quality = quality or sampled_quality
    boxes = _sample_boxes(rng, int(drawn["count"]), str(drawn["kind"]), quality.framing)
    return Scene(str(drawn["setting"]), str(drawn["kind"]), str(drawn["color"]), int(drawn["count"]),
                 quality, boxes, seed)
