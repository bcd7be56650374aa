"""GenEval's rules where the truth is known: the world's attribute judge behind the detector interface of
rewards/following.py, and GenEval metadata written from world prompts' expected attributes.

A world render holds `count` objects of one `kind` and `color` in a `setting`. As GenEval's counting and colour
prompts do, a world prompt's metadata includes `count` objects of its kind in its colour and excludes `count + 1`
(exactly that many); the setting has no GenEval rule and is left out. `WorldDetector` reports what the attribute
judge reads: its count of its kind, each in its colour (the world has no boxes: position prompts do not apply). The
verdict then agrees with the judge's kind, colour and count all right; `rule_agreement` measures how often.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from ..rewards import register_reward
from ..rewards.following import Detection, GenEvalReward
from ..rewards.questions import Question, QuestionReward, geneval_questions
from .bundle import BUNDLE_DIR, load_judge

__all__ = ["WorldDetector", "WorldGenEvalReward", "WorldQuestionReward", "WorldVQA", "rule_agreement",
           "world_geneval_metadata"]

CONTENT = ("kind", "color", "count")  # what GenEval's rules check of a world render


def world_geneval_metadata(record: dict) -> dict:
    """GenEval metadata of a world prompt record (its `expected` attributes: a kind, and the colour and count where the
    prompt names them), tagged as GenEval tags such prompts (a count: counting; a colour alone: colors)."""
    want = record["expected"]
    include = {"class": want["kind"], "count": want.get("count") or 1}
    if want.get("color") is not None:
        include["color"] = want["color"]
    named = want.get("count") is not None
    return {"prompt": record["prompt"], "tag": "counting" if named and want["count"] > 1 else
            "colors" if "color" in include else "single_object", "include": [include],
            **({"exclude": [{"class": want["kind"], "count": want["count"] + 1}]} if named else {})}


class _JudgeReader:
    """What reads a world render through the attribute judge (the bundle's, or `judge`)."""

    name = "the world's attribute judge"

    def __init__(self, judge_bundle: Path | None = None, judge=None):
        self.judge = judge if judge is not None else load_judge(judge_bundle or BUNDLE_DIR, "attributes")

    @property
    def model(self):
        """The torch model a reward holds (`Reward.hold`): the judge."""
        return self.judge


class WorldDetector(_JudgeReader):
    """The attribute judge as a detector: per image, its predicted count of objects of its predicted kind, in its
    predicted colour, no boxes."""

    @torch.no_grad()
    def detect(self, images: torch.Tensor, classes: Sequence[Sequence[str]]) -> list[list[Detection]]:
        predicted = self.judge.predict(images)
        return [[Detection(kind, 1.0, None, color)] * count if kind in names else []
                for kind, color, count, names in zip(predicted["kind"], predicted["color"], predicted["count"], classes)]


class WorldGenEvalReward(GenEvalReward):
    """The geneval judge on world prompts: each prompt's metadata written from the attributes the world's parser reads
    in it (`world_geneval_metadata`), the world detector's colours its own."""

    def __init__(self, judge_bundle: Path | None = None, judge=None):
        super().__init__({}, WorldDetector(judge_bundle, judge))

    def forward(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        for prompt in prompts:
            if prompt not in self.metadata:
                self.metadata[prompt] = world_geneval_metadata({"prompt": prompt,
                                                                "expected": _expected(prompt, "world-geneval")})
        return super().forward(images, prompts)


register_reward("world-geneval", help="GenEval's rules on world renders, the attribute judge as the detector; 0/1.",
                eval_only=True)(lambda bundle_dir=None: WorldGenEvalReward(bundle_dir))


class WorldVQA(_JudgeReader):
    """The attribute judge as a question answerer: a question's `about` (what it asks, as data) checked against the
    judge's kind, colour and count of the image; the world has no relations between objects ("no")."""

    @torch.no_grad()
    def answer(self, images: torch.Tensor, questions: Sequence[Sequence[Question]]) -> list[list[str]]:
        predicted = self.judge.predict(images)
        out = []
        for i, asked in enumerate(questions):
            seen = {"class": predicted["kind"][i], "color": predicted["color"][i], "count": predicted["count"][i]}
            out.append(["yes" if "relation" not in q.about and all(seen[k] == v for k, v in q.about.items()) else "no"
                        for q in asked])
        return out


def world_questions(record: dict) -> list[Question]:
    """The questions of a world prompt: GenEval's, written from its metadata (`world_geneval_metadata`)."""
    return geneval_questions(world_geneval_metadata(record))


class WorldQuestionReward(QuestionReward):
    """The question judge on world prompts: each prompt's questions written from the attributes the world's parser
    reads in it, answered by the attribute judge (`WorldVQA`)."""

    def __init__(self, judge_bundle: Path | None = None, judge=None):
        super().__init__({}, WorldVQA(judge_bundle, judge), "world prompts")

    def forward(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        for prompt in prompts:
            if prompt not in self.questions:
                self.questions[prompt] = world_questions({"prompt": prompt, "expected": _expected(prompt, "world-vqa")})
        return super().forward(images, prompts)


def _expected(prompt: str, judge: str) -> dict:
    """What a world prompt names, as the world's parser reads it; a prompt naming no kind of object is refused."""
    from ..world.prompts import parse_prompt

    expected = parse_prompt(prompt)
    if expected.get("kind") is None:
        raise ValueError(f"{judge} reads the kind of object a world prompt names; {prompt!r} names none: score world "
                         "prompt sets.")
    return expected


register_reward("world-vqa", help="Questions from world prompts (entity, count, colour) answered by the attribute judge.",
                eval_only=True)(lambda bundle_dir=None: WorldQuestionReward(bundle_dir))


@torch.no_grad()
def rule_agreement(images: torch.Tensor, records: Sequence[dict], judge) -> dict:
    """How often GenEval's verdict on the world detector, and the question judge's all-right on the world's answers,
    equal the attribute judge's kind, colour and count all right, over `images` (one per record): {"n", "agreement",
    "vqa_agreement", "geneval", "vqa", "judge"} (the last three: the share correct by each)."""
    reward = WorldGenEvalReward(judge=judge)
    reward.metadata.update({r["prompt"]: world_geneval_metadata(r) for r in records})
    verdicts = reward(images, [r["prompt"] for r in records]).bool().tolist()
    predicted = judge.predict(images)
    right = [all(predicted[k][i] == r["expected"][k] for k in CONTENT) for i, r in enumerate(records)]
    vqa = QuestionReward({r["prompt"]: world_questions(r) for r in records}, WorldVQA(judge=judge), "world prompts")
    answered = (vqa(images, [r["prompt"] for r in records]) == 1).tolist()
    n = len(records)
    return {"n": n, "agreement": sum(a == b for a, b in zip(verdicts, right)) / n, "geneval": sum(verdicts) / n,
            "judge": sum(right) / n, "vqa_agreement": sum(a == b for a, b in zip(answered, right)) / n,
            "vqa": sum(answered) / n}


