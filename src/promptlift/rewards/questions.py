"""Prompt following by questions (TIFA / DSG style, as DPG-Bench scores): each prompt comes with yes/no questions about
what its image must show, a visual question-answering model answers them, and an image scores the share it answers
as the prompt implies. A question whose parent (DSG's dependency: "is the dog red?" depends on "is there a dog?") was
answered wrong counts as wrong, as DSG scores.

Questions come from the benchmark's files where they exist: DPG-Bench's `dpg_bench.csv` (its propositions, their
dependencies and broad categories), or are written from GenEval's metadata (an entity question per object, then its
count, colour and position). The answering model is a plug: `BlipVQA` (BLIP-VQA through transformers) by default.
DPG-Bench's paper answers with mPLUG-large: scores from another model compare runs with each other, not with
published DPG-Bench scores.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, Sequence

import torch

from .base import Reward, WeightSource, register_reward

__all__ = ["BlipVQA", "Question", "QuestionReward", "VQAModel", "VQAScore", "geneval_questions", "read_dpg_questions"]


@dataclass(frozen=True)
class Question:
    """A yes/no question about an image, its category, the answer the prompt implies, the indices of the questions it
    depends on, and (for a judge that reads attributes rather than text) what it asks as data."""

    text: str
    category: str
    answer: str = "yes"
    parents: tuple[int, ...] = ()
    about: dict = field(default_factory=dict, hash=False, compare=False)


class VQAModel(Protocol):
    """Answers `questions[i]` (each a list) about image i: (B, 3, H, W) in [0, 1] -> per image, its answers."""

    name: str

    def answer(self, images: torch.Tensor, questions: Sequence[Sequence[Question]]) -> list[list[str]]: ...


def _plural(name: str, count: int) -> str:
    return name if count == 1 else name + ("es" if name.endswith(("s", "sh", "ch", "x")) else "s")


NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def geneval_questions(metadata: dict) -> list[Question]:
    """Questions of a GenEval metadata entry: per included object "is there a CLASS?" (entity), then, depending on
    it, its count (when more than one, or exactly one where the metadata excludes two), colour and position
    (relation, also depending on the other object's)."""
    questions: list[Question] = []
    entity_of: list[int] = []
    for want in metadata.get("include", []):
        cls, count = want["class"], want["count"]
        entity = len(questions)
        entity_of.append(entity)
        questions.append(Question(f"Is there a {cls}?", "entity", parents=(), about={"class": cls}))
        exact = any(x["class"] == cls and x["count"] == count + 1 for x in metadata.get("exclude", []))
        if count > 1 or exact:  # exactly one only where the metadata says so (GenEval's counting prompts)
            number = NUMBERS[count] if count < len(NUMBERS) else str(count)
            text = f"Is there exactly one {cls}?" if count == 1 else f"Are there {number} {_plural(cls, count)}?"
            questions.append(Question(text, "count", parents=(entity,), about={"class": cls, "count": count}))
        if "color" in want:
            questions.append(Question(f"Is the {cls} {want['color']}?", "attribute", parents=(entity,),
                                      about={"class": cls, "color": want["color"]}))
        if "position" in want:
            relation, group = want["position"]
            other = metadata["include"][group]["class"]
            questions.append(Question(f"Is the {cls} {relation} the {other}?", "relation",
                                      parents=(entity, entity_of[group]),
                                      about={"class": cls, "relation": relation, "other": other}))
    return questions


def read_dpg_questions(path: str | Path) -> dict[str, list[Question]]:
    """{prompt: questions} from DPG-Bench's dpg_bench.csv (columns item_id, text, proposition_id, dependency,
    category_broad, question_natural_language; a dependency of 0 is none)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"DPG-Bench's questions file {str(path)!r} is missing; get dpg_bench.csv from the ELLA "
                         "repository (dpg_bench/dpg_bench.csv) and pass its path.")
    rows: dict[str, list[dict]] = {}
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        needed = {"item_id", "text", "proposition_id", "dependency", "category_broad", "question_natural_language"}
        if not needed <= set(reader.fieldnames or ()):
            raise ValueError(f"{str(path)!r} lacks DPG-Bench's columns {sorted(needed - set(reader.fieldnames or ()))}.")
        for row in reader:
            rows.setdefault(row["text"], []).append(row)
    out = {}
    for prompt, items in rows.items():
        index = {str(r["proposition_id"]): i for i, r in enumerate(items)}
        out[prompt] = [Question(r["question_natural_language"], r["category_broad"],
                                parents=tuple(index[d.strip()] for d in str(r["dependency"]).split(",")
                                              if d.strip() not in ("", "0") and d.strip() in index))
                       for r in items]
    return out


class BlipVQA:
    """BLIP fine-tuned for VQA (Li et al. 2022) through transformers: each question's generated answer, lower-cased."""

    def __init__(self, model: str = "Salesforce/blip-vqa-base", max_new_tokens: int = 5):
        from transformers import BlipForQuestionAnswering, BlipProcessor

        self.name = f"BLIP-VQA ({model})"
        self.processor = BlipProcessor.from_pretrained(model)
        self.model = BlipForQuestionAnswering.from_pretrained(model).eval().requires_grad_(False)
        self.max_new_tokens = max_new_tokens

    @torch.no_grad()
    def answer(self, images: torch.Tensor, questions: Sequence[Sequence[Question]]) -> list[list[str]]:
        from .following import _pil

        out = []
        for image, asked in zip(images, questions):
            if not asked:
                out.append([])
                continue
            inputs = self.processor(images=[_pil(image)] * len(asked), text=[q.text for q in asked], return_tensors="pt",
                                    padding=True)
            ids = self.model.generate(**{k: v.to(self.model.device) for k, v in inputs.items()},
                                      max_new_tokens=self.max_new_tokens)
            out.append([a.strip().lower() for a in self.processor.batch_decode(ids, skip_special_tokens=True)])
        return out

    @torch.no_grad()
    def yes_probability(self, image: torch.Tensor, questions: Sequence[str]) -> list[float]:
        """Per question about `image` (3, H, W), the probability of "yes" as the answer's first token (the softmax
        over the vocabulary, as T2I-CompBench's BLIP-VQA score reads it)."""
        from .following import _pil

        tokenizer = self.processor.tokenizer
        yes = tokenizer.convert_tokens_to_ids("yes")
        if yes is None or yes == tokenizer.unk_token_id:
            raise ValueError(f"{self.name}'s vocabulary has no token 'yes'; use a BLIP-VQA model whose answers are words.")
        inputs = self.processor(images=[_pil(image)] * len(questions), text=list(questions), return_tensors="pt",
                                padding=True)
        out = self.model.generate(**{k: v.to(self.model.device) for k, v in inputs.items()}, max_new_tokens=1,
                                  output_scores=True, return_dict_in_generate=True)
        return out.scores[0].float().softmax(-1)[:, yes].tolist()


class QuestionReward(Reward):
    """The share of an image's questions answered as its prompt implies (DSG's rule: a question whose parent was
    answered wrong is wrong); not differentiable. `last_answers` keeps the last batch's answers, `last_details` each
    image's questions right and asked per question category."""

    differentiable = False
    score_range = (0.0, 1.0)

    def __init__(self, questions: dict[str, list[Question]], vqa: VQAModel, source: str = "the benchmark's file"):
        super().__init__()
        self.questions, self.vqa, self.source = questions, vqa, source
        self.hold(vqa)
        self.last_answers: list[list[str]] = []
        self.judged_with = f"{vqa.name} on questions from {source}"

    def forward(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        self.check_inputs(images, prompts)
        missing = [p for p in prompts if not self.questions.get(p)]
        if missing:
            raise ValueError(f"the question judge has no questions for the prompt {missing[0]!r} in {self.source}; "
                             "score the benchmark's own prompts, or give its questions file.")
        asked = [self.questions[p] for p in prompts]
        self.last_answers = self.vqa.answer(images, asked)
        scores, self.last_details = [], []
        for questions, answers in zip(asked, self.last_answers):
            right: list[bool] = []
            for q, a in zip(questions, answers):
                right.append(a == q.answer and all(right[p] for p in q.parents if p < len(right)))
            by_category: dict[str, list[bool]] = {}
            for q, r in zip(questions, right):
                by_category.setdefault(q.category, []).append(r)
            self.last_details.append({"questions": {c: [sum(v), len(v)] for c, v in by_category.items()}})
            scores.append(sum(right) / len(right))
        return torch.tensor(scores)


def _vqa_sources(model: str = "Salesforce/blip-vqa-base", **_) -> list[WeightSource]:
    return [WeightSource("the BLIP-VQA model", model, "download it once online, or pass `--reward_option vqa.model=PATH`")]


@register_reward("vqa", help="Share of the prompt's yes/no questions (DPG-Bench's file, or from GenEval's metadata) "
                             "that BLIP-VQA answers right.", sources=_vqa_sources, eval_only=True)
def vqa_reward(questions: str | None = None, geneval: str | None = None,
               model: str = "Salesforce/blip-vqa-base") -> QuestionReward:
    """`questions`: DPG-Bench's dpg_bench.csv; else questions written from GenEval's metadata (`geneval`: its file)."""
    if questions is not None:
        return QuestionReward(read_dpg_questions(questions), BlipVQA(model), str(questions))
    from .following import read_geneval_metadata

    metadata = read_geneval_metadata(geneval)
    return QuestionReward({p: geneval_questions(m) for p, m in metadata.items()}, BlipVQA(model),
                          "questions written from GenEval's metadata")


class VQAScore(Reward):
    """VQAScore (Lin et al. 2024): the probability that a VQA model answers "yes" to "Does this figure show
    '{prompt}'? Please answer yes or no." (not differentiable). The paper's model is CLIP-FlanT5 through the
    `t2v-metrics` package, which pins torch 2.5 and transformers 4.49 and does not install beside promptlift: here the
    answering model is BLIP-VQA (`BlipVQA.yes_probability`), so scores compare runs with each other, not with
    published VQAScores."""

    differentiable = False
    score_range = (0.0, 1.0)
    QUESTION = "Does this figure show '{}'? Please answer yes or no."

    def __init__(self, vqa: BlipVQA):
        super().__init__()
        self.vqa = vqa
        self.hold(vqa)
        self.judged_with = f"VQAScore's question, P(yes) by {vqa.name}"

    def forward(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        self.check_inputs(images, prompts)
        return torch.tensor([self.vqa.yes_probability(image, [self.QUESTION.format(prompt)])[0]
                             for image, prompt in zip(images, prompts)])


@register_reward("vqascore", help="VQAScore: P(yes) to 'Does this figure show {prompt}?' by BLIP-VQA (the paper's "
                                  "CLIP-FlanT5 needs t2v-metrics' own environment).", sources=_vqa_sources, eval_only=True)
def vqascore_reward(model: str = "Salesforce/blip-vqa-base") -> VQAScore:
    return VQAScore(BlipVQA(model))
