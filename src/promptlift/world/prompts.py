"""Three prompt styles per scene, and the parser that maps any of them back to the scene's attributes.

- complex: content + setting keywords + the quality keywords that hold for the render (model-preferred);
- literal: content only, short ("two red boats at sunset");
- narrative: natural sentences with commonsense indirection ("a pair of crimson sailboats as the sun
  goes down"), in two disjoint phrasing pools, "train" and "val". The base model never sees either.
- mixed: a literal prompt with one or two of its attributes in a narrative pool's words ("a lone white tree in
  the snow"): what people type is mostly plain, with a word here and there the base model does not read.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Literal

import numpy as np

from .scene import ATTRIBUTES, Scene

__all__ = [
    "POOLS",
    "Pool",
    "complex_prompt",
    "indirect_share",
    "literal_prompt",
    "mixed_prompt",
    "narrative_prompt",
    "parse_prompt",
    "pool_phrases",
    "quality_keywords",
]

Pool = Literal["train", "val"]
POOLS: tuple[str, ...] = ("train", "val")

COUNT_WORDS = {1: "one", 2: "two", 3: "three", 4: "four"}
NOUNS = {  # (singular, plural)
    "ball": ("ball", "balls"), "box": ("box", "boxes"), "tree": ("tree", "trees"),
    "house": ("house", "houses"), "boat": ("boat", "boats"), "flower": ("flower", "flowers"),
}
LITERAL_SETTING = {"day": "during the day", "sunset": "at sunset", "night": "at night", "snow": "in the snow",
                   "beach": "on the beach"}
# Scenery keywords of complex prompts; they name no colour, count or kind.
SCENERY = {"day": "daytime, clear sky, grassy meadow", "sunset": "sunset, warm evening sky",
           "night": "night, starry sky, moonlight", "snow": "snowy landscape, winter",
           "beach": "beach, ocean, sandy shore"}
# Quality keywords and the factor condition under which each holds for the render.
QUALITY_KEYWORDS = (
    ("soft lighting", lambda q: q.lighting >= 0.7),
    ("highly detailed", lambda q: q.detail >= 0.7),
    ("harmonious colors", lambda q: q.harmony >= 0.7),
    ("clean background", lambda q: q.clutter <= 0.3),
    ("well composed", lambda q: q.framing >= 0.7),
    ("sharp focus", lambda q: q.artifacts <= 0.3),
)

# Narrative phrasings: {pool: {value: [phrases]}}. No phrase (or template) is in both pools.
NARRATIVE_COUNT = {
    "train": {1: ["a lone", "a single"], 2: ["a pair of", "a couple of"], 3: ["a trio of", "a threesome of"],
              4: ["a quartet of", "a foursome of"]},
    "val": {1: ["a solitary", "a lonely"], 2: ["a duo of", "a twosome of"], 3: ["a triad of", "a triplet of"],
            4: ["a tetrad of", "a quadruplet of"]},
}
# Colours: adjectives placed before the noun ("pre") and similes placed after it ("post").
NARRATIVE_COLOR = {
    "train": {
        "red": (["crimson", "scarlet"], ["the color of a ripe tomato"]),
        "orange": (["tangerine", "carrot-colored"], ["the color of a pumpkin"]),
        "yellow": (["lemon", "canary"], ["the color of a banana"]),
        "green": (["emerald", "jade"], ["the color of fresh grass"]),
        "blue": (["sapphire", "cobalt"], ["the color of a blueberry"]),
        "purple": (["violet", "plum-colored"], ["the color of a grape"]),
        "white": (["ivory", "milky"], ["the color of fresh milk"]),
        "black": (["ebony", "inky"], ["the color of coal"]),
    },
    "val": {
        "red": (["ruby", "cherry-colored"], ["the color of a fire truck"]),
        "orange": (["apricot", "rust-colored"], ["the color of a traffic cone"]),
        "yellow": (["mustard", "saffron"], ["the color of egg yolk"]),
        "green": (["lime", "moss-colored"], ["the color of a frog"]),
        "blue": (["azure", "cerulean"], ["the color of a cornflower"]),
        "purple": (["lavender", "amethyst"], ["the color of an eggplant"]),
        "white": (["chalky", "pearly"], ["the color of paper"]),
        "black": (["onyx", "sooty"], ["the color of a crow"]),
    },
}
NARRATIVE_KIND = {
    "train": {"ball": [("sphere", "spheres"), ("bouncy toy", "bouncy toys")],
              "box": [("crate", "crates"), ("carton", "cartons")],
              "tree": [("pine", "pines"), ("evergreen", "evergreens")],
              "house": [("cottage", "cottages"), ("place to live", "places to live")],
              "boat": [("sailboat", "sailboats"), ("dinghy", "dinghies")],
              "flower": [("blossom", "blossoms"), ("daisy", "daisies")]},
    "val": {"ball": [("orb", "orbs"), ("round plaything", "round playthings")],
            "box": [("parcel", "parcels"), ("chest", "chests")],
            "tree": [("fir", "firs"), ("conifer", "conifers")],
            "house": [("dwelling", "dwellings"), ("bungalow", "bungalows")],
            "boat": [("yacht", "yachts"), ("vessel", "vessels")],
            "flower": [("bloom", "blooms"), ("wildflower", "wildflowers")]},
}
NARRATIVE_SETTING = {
    "train": {"day": ["in broad daylight", "on a bright afternoon"], "sunset": ["as the sun goes down", "at dusk"],
              "night": ["under the stars", "after dark"], "snow": ["in a winter wonderland", "on a frosty field"],
              "beach": ["by the seaside", "on the sandy shore"]},
    "val": {"day": ["around noon", "under the midday sky"], "sunset": ["in the evening glow", "when the sun sinks low"],
            "night": ["at midnight", "beneath the moon"], "snow": ["after a heavy snowfall", "in the icy cold"],
            "beach": ["where the waves meet the sand", "along the coast"]},
}
NARRATIVE_TEMPLATES = {
    "train": ["I saw {np} {setting}.", "There {be} {np} {setting}, just sitting there.",
              "{np} resting quietly {setting}.", "Picture {np} {setting}.", "{setting}, {np} could be seen."],
    "val": ["Imagine {np} {setting}.", "Somewhere {setting}, {np} waited patiently.", "{np} basking {setting}.",
            "Someone spotted {np} {setting}."],
}
P_DIRECT = 0.25  # chance that a narrative prompt names an attribute directly


def quality_keywords(scene: Scene) -> list[str]:
    """The quality keywords that hold for this scene's render."""
    return [word for word, holds in QUALITY_KEYWORDS if holds(scene.quality)]


def _noun(kind: str, count: int) -> str:
    return NOUNS[kind][count > 1]


def complex_prompt(scene: Scene) -> str:
    """"two red boats, sunset, warm evening sky, soft lighting, highly detailed"."""
    content = f"{COUNT_WORDS[scene.count]} {scene.color} {_noun(scene.kind, scene.count)}"
    return ", ".join([content, SCENERY[scene.setting], *quality_keywords(scene)])


def literal_prompt(scene: Scene) -> str:
    """"two red boats at sunset"; "an orange ball on the beach"."""
    if scene.count == 1:
        article = "an" if scene.color[0] in "aeiou" else "a"
        head = f"{article} {scene.color}"
    else:
        head = f"{COUNT_WORDS[scene.count]} {scene.color}"
    return f"{head} {_noun(scene.kind, scene.count)} {LITERAL_SETTING[scene.setting]}"


def mixed_prompt(scene: Scene, pool: Pool = "train") -> str:
    """The literal prompt with one or two attributes (at random) in `pool`'s words: "a lone white tree in the snow"."""
    if pool not in POOLS:
        raise ValueError(f"`pool` must be one of {list(POOLS)}, got {pool!r}.")
    rng = np.random.default_rng([scene.seed, POOLS.index(pool) + 1, 7])
    pick = lambda seq: seq[rng.integers(len(seq))]  # noqa: E731
    reworded = set(rng.choice(list(ATTRIBUTES), size=int(rng.integers(1, 3)), replace=False).tolist())
    plural = scene.count > 1
    noun = pick(NARRATIVE_KIND[pool][scene.kind])[plural] if "kind" in reworded else _noun(scene.kind, scene.count)
    color = pick(NARRATIVE_COLOR[pool][scene.color][0]) if "color" in reworded else scene.color
    if "count" in reworded:
        head = f"{pick(NARRATIVE_COUNT[pool][scene.count])} {color}"
    elif plural:
        head = f"{COUNT_WORDS[scene.count]} {color}"
    else:
        head = f"{'an' if color[0] in 'aeiou' else 'a'} {color}"
    setting = pick(NARRATIVE_SETTING[pool][scene.setting]) if "setting" in reworded else LITERAL_SETTING[scene.setting]
    return f"{head} {noun} {setting}"


def _narrative_parts(scene: Scene, pool: str, rng: np.random.Generator) -> tuple[str, dict[str, bool]]:
    """A narrative prompt and, per attribute, whether it was named indirectly."""
    if pool not in POOLS:
        raise ValueError(f"`pool` must be one of {list(POOLS)}, got {pool!r}.")
    pick = lambda seq: seq[rng.integers(len(seq))]  # noqa: E731
    indirect = {name: bool(rng.random() >= P_DIRECT) for name in ATTRIBUTES}
    count = pick(NARRATIVE_COUNT[pool][scene.count]) if indirect["count"] else COUNT_WORDS[scene.count]
    plural = scene.count > 1
    noun = pick(NARRATIVE_KIND[pool][scene.kind])[plural] if indirect["kind"] else _noun(scene.kind, scene.count)
    pre, post = NARRATIVE_COLOR[pool][scene.color]
    if not indirect["color"]:
        np_ = f"{count} {scene.color} {noun}"
    elif rng.random() < 0.5:
        np_ = f"{count} {pick(pre)} {noun}"
    else:
        np_ = f"{count} {noun} {pick(post)}"
    setting = pick(NARRATIVE_SETTING[pool][scene.setting]) if indirect["setting"] else LITERAL_SETTING[scene.setting]
    template = pick(NARRATIVE_TEMPLATES[pool])
    text = template.format(np=np_, setting=setting, be="were" if plural else "was")
    return text[0].upper() + text[1:], indirect


def narrative_prompt(scene: Scene, pool: Pool = "train") -> str:
    """A simple, SURD-style sentence from `pool` that determines all four attributes, mostly indirectly."""
    rng = np.random.default_rng([scene.seed, POOLS.index(pool) + 1])
    return _narrative_parts(scene, pool, rng)[0]


def indirect_share(scenes: list[Scene], pool: Pool) -> float:
    """The share of attribute mentions named indirectly in the narrative prompts of `scenes`."""
    flags = []
    for scene in scenes:
        rng = np.random.default_rng([scene.seed, POOLS.index(pool) + 1])
        flags += list(_narrative_parts(scene, pool, rng)[1].values())
    return float(np.mean(flags))


def pool_phrases(pool: Pool) -> set[str]:
    """Every phrase and template of a narrative pool (for the disjointness check)."""
    phrases = set(NARRATIVE_TEMPLATES[pool])
    for table in (NARRATIVE_COUNT, NARRATIVE_SETTING):
        phrases |= {p for ps in table[pool].values() for p in ps}
    phrases |= {p for pre, post in NARRATIVE_COLOR[pool].values() for p in (*pre, *post)}
    phrases |= {p for forms in NARRATIVE_KIND[pool].values() for pair in forms for p in pair}
    return phrases


# ---------------------------------------------------------------------------------------------
# The parser: every phrase of every style, matched longest first at word boundaries.


@lru_cache(maxsize=4)
def _phrase_table(pools: tuple[str, ...] = POOLS) -> list[tuple[str, str, object, bool]]:
    """[(phrase, attribute, value, is_plural_noun)] of the literal and complex words and the narrative `pools`',
    longest phrase first; a phrase has one meaning."""
    rows: dict[str, tuple[str, object, bool]] = {}

    def add(phrase: str, attr: str, value, plural: bool = False) -> None:
        if phrase in rows and rows[phrase][:2] != (attr, value):
            raise ValueError(f"phrase {phrase!r} means both {rows[phrase][:2]} and {(attr, value)}.")
        rows[phrase] = (attr, value, plural)

    for n, word in COUNT_WORDS.items():
        add(word, "count", n)
    for kind, (one, many) in NOUNS.items():
        add(one, "kind", kind)
        add(many, "kind", kind, True)
    for color in ATTRIBUTES["color"]:
        add(color, "color", color)
    for setting in ATTRIBUTES["setting"]:
        add(LITERAL_SETTING[setting], "setting", setting)
        add(SCENERY[setting].split(", ")[0], "setting", setting)
    for pool in pools:
        for n, phrases in NARRATIVE_COUNT[pool].items():
            for p in phrases:
                add(p, "count", n)
        for color, (pre, post) in NARRATIVE_COLOR[pool].items():
            for p in (*pre, *post):
                add(p, "color", color)
        for kind, forms in NARRATIVE_KIND[pool].items():
            for one, many in forms:
                add(one, "kind", kind)
                add(many, "kind", kind, True)
        for setting, phrases in NARRATIVE_SETTING[pool].items():
            for p in phrases:
                add(p, "setting", setting)
    return sorted(((p, *v) for p, v in rows.items()), key=lambda r: -len(r[0]))


def _normalise(text: str) -> str:
    return " " + re.sub(r"[^a-z0-9'\-]+", " ", text.lower()).strip() + " "


def parse_prompt(text: str, pools: tuple[str, ...] = POOLS) -> dict[str, object]:
    """Map a prompt of any style back to {setting, kind, color, count}; None where absent or contradictory.
    `pools=()` reads the literal and complex prompts' words only: what the base model was trained to draw."""
    norm = _normalise(text)
    taken = np.zeros(len(norm), bool)
    found: dict[str, set] = {name: set() for name in ATTRIBUTES}
    plural_noun = None
    for phrase, attr, value, plural in _phrase_table(tuple(pools)):
        for m in re.finditer(re.escape(f" {phrase} "), norm):
            start, end = m.start() + 1, m.end() - 1
            if taken[start:end].any():
                continue
            taken[start:end] = True
            found[attr].add(value)
            if attr == "kind":
                plural_noun = plural
    result = {name: (next(iter(v)) if len(v) == 1 else None) for name, v in found.items()}
    if result["count"] is None and not found["count"] and plural_noun is False:
        result["count"] = 1  # "a red boat"
    return result
