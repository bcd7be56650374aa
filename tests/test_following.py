"""Prompt following: GenEval's rules, the OWLv2 detector and CLIP colour check through their real loading code on tiny
random models built here, and the rules on world renders against the attribute judge, which knows the truth."""

import pytest
import torch

from promptlift.rewards.following import (ClipColors, Detection, GenEvalReward, OwlDetector, geneval_verdict,
                                          relative_position)


def box(x0, y0, x1, y1, label="dog", color=None):
    return Detection(label, 1.0, (x0, y0, x1, y1), color)


def test_geneval_rules_count_colour_position_and_exclusion():
    counting = {"include": [{"class": "dog", "count": 2}], "exclude": [{"class": "dog", "count": 3}]}
    no_colours = lambda objects, cls: [o.color for o in objects]  # noqa: E731
    two = [box(0, 0, 10, 10), box(20, 0, 30, 10)]
    assert geneval_verdict(counting, {"dog": two}, no_colours) == (True, [])
    assert geneval_verdict(counting, {"dog": two[:1]}, no_colours) == (False, ["expected dog >= 2, found 1"])
    assert not geneval_verdict(counting, {"dog": two + [box(40, 0, 50, 10)]}, no_colours)[0]  # exactly two
    colour = {"include": [{"class": "dog", "count": 1, "color": "red"}]}
    assert geneval_verdict(colour, {"dog": [box(0, 0, 9, 9, color="red")]}, no_colours)[0]
    assert not geneval_verdict(colour, {"dog": [box(0, 0, 9, 9, color="blue")]}, no_colours)[0]
    position = {"include": [{"class": "cat", "count": 1}, {"class": "dog", "count": 1, "position": ["right of", 0]}]}
    cat, dog_right, dog_below = box(0, 0, 10, 10, "cat"), box(30, 0, 40, 10), box(0, 30, 10, 40)
    assert relative_position(dog_right, cat) == {"right of"} and relative_position(dog_below, cat) == {"below"}
    assert relative_position(box(0, 0, 10, 10), box(1, 0, 11, 10)) == set()  # within the margin: no direction
    assert geneval_verdict(position, {"cat": [cat], "dog": [dog_right]}, no_colours)[0]
    correct, reasons = geneval_verdict(position, {"cat": [cat], "dog": [dog_below]}, no_colours)
    assert not correct and reasons == ["expected dog right of the cat"]
    correct, reasons = geneval_verdict(position, {"dog": [dog_right]}, no_colours)  # its anchor is missing
    assert not correct and "expected cat >= 1, found 0" in reasons


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """Random OWLv2 and CLIP, tiny, saved as from_pretrained reads them (model + processor)."""
    from helpers import save_tiny_owl_and_clip

    return save_tiny_owl_and_clip(tmp_path_factory.mktemp("following"))


def test_the_geneval_judge_runs_owlv2_and_clip_through_their_loading_code(tiny_models):
    """From saved folders as from Hub ids: boxes in the image's pixels, most confident first, of the asked classes
    only; colours from GenEval's ten; a 0/1 score per image with the reasons; a prompt without metadata refused."""
    detector = OwlDetector(str(tiny_models / "owl"), threshold=0.0, max_objects=3)
    images = torch.rand(2, 3, 48, 64)
    found = detector.detect(images, [["dog"], ["cat", "bench"]])
    assert 0 < len(found[0]) <= 3 and len(found[1]) <= 6 and {d.label for d in found[1]} <= {"cat", "bench"}
    assert all(d.box is not None and 0 <= d.box[0] <= d.box[2] <= 64 + 1e-3 for d in found[0])
    assert [d.score for d in found[0]] == sorted((d.score for d in found[0]), reverse=True)
    colors = ClipColors(str(tiny_models / "clip"))
    assert set(colors(images[0], found[0], "dog")) <= {"red", "orange", "yellow", "green", "blue", "purple", "pink",
                                                        "brown", "black", "white"}
    metadata = {"a photo of a dog": {"tag": "single_object", "include": [{"class": "dog", "count": 1}]},
                "a photo of four dogs": {"tag": "counting", "include": [{"class": "dog", "count": 4}],
                                         "exclude": [{"class": "dog", "count": 5}]}}
    judge = GenEvalReward(metadata, detector, colors)
    held = list(judge.modules())  # `reward.to(device)` moves the detector and CLIP with it
    assert any(m is detector.model for m in held) and any(m is colors.model for m in held)
    scores = judge(images, list(metadata))
    assert scores.tolist() == [1.0, 0.0]  # a detection at threshold 0 finds one dog, never exactly four of 3 at most
    assert judge.last_details == [{"reasons": []}, {"reasons": ["expected dog >= 4, found 3"]}]
    with pytest.raises(ValueError, match="no GenEval metadata for the prompt 'a cat'.*--prompts geneval"):
        judge(images[:1], ["a cat"])


def test_the_geneval_judge_is_registered_with_its_weights_named():
    from promptlift.rewards import MissingWeightsError, check_rewards, reward_spec

    spec = reward_spec("geneval")
    assert spec.eval_only and "OWLv2" in spec.help
    with pytest.raises(MissingWeightsError, match="OWLv2 detector not found at 'no/such-owl'.*geneval.detector=PATH"):
        check_rewards(["geneval"], {"geneval": {"detector": "no/such-owl"}})


def test_on_world_renders_the_rules_agree_with_the_attribute_judge(tiny_bundle_dir):
    """World prompts' metadata (count, colour, exactly that many) and the attribute judge as the detector: the rules'
    verdict is the judge's kind, colour and count all right, image by image (here a random judge on real renders:
    the rules, not the judge, are what is checked)."""
    from promptlift.judges.bundle import load_judge
    from promptlift.judges.following import (WorldGenEvalReward, WorldQuestionReward, rule_agreement,
                                             world_geneval_metadata)
    from promptlift.world.dataset import iter_prompt_set
    from promptlift.world.render import render
    from promptlift.world.scene import sample_scene

    records = list(iter_prompt_set("literal", num_prompts=8))
    images = torch.stack([torch.from_numpy(render(sample_scene(r["scene_seed"])).copy()).permute(2, 0, 1).float() / 255
                          for r in records])
    judge = load_judge(tiny_bundle_dir, "attributes")
    result = rule_agreement(images, records, judge)
    assert result["n"] == 8 and result["agreement"] == 1.0 and result["vqa_agreement"] == 1.0
    assert world_geneval_metadata(records[0])["exclude"] == [{"class": records[0]["expected"]["kind"],
                                                              "count": records[0]["expected"]["count"] + 1}]
    reward = WorldGenEvalReward(judge=judge)  # as `--rewards world-geneval` builds it: metadata parsed from the text
    assert reward(images, [r["prompt"] for r in records]).mean().item() == result["geneval"]
    with pytest.raises(ValueError, match="world-geneval reads the kind of object a world prompt names; 'a photo of a dog' names none"):
        reward(images[:1], ["a photo of a dog"])
    questions = WorldQuestionReward(judge=judge)  # `--rewards world-vqa`: the questions written from the text
    assert (questions(images, [r["prompt"] for r in records]) == 1).float().mean().item() == result["vqa"]
    assert {c for d in questions.last_details for c in d["questions"]} <= {"entity", "count", "attribute"}


def test_eval_prints_the_benchmarks_category_table_for_each_system(tmp_path, tiny_models, tiny_pipeline_dirs):
    """`promptlift eval --prompts geneval --rewards geneval --judge geneval --system ...` on a tiny model: each system
    scored 0/1 per image, GenEval's table (a row per tag, then overall, the mean of the tags) with intervals, printed
    and in systems.json; each run's summary has the tags' means with intervals."""
    import json

    from helpers import run_cli, save_tiny_blip_vqa

    rows = [{"tag": "single_object", "include": [{"class": "dog", "count": 1}], "prompt": "a photo of a dog"},
            {"tag": "single_object", "include": [{"class": "cat", "count": 1}], "prompt": "a photo of a cat"},
            {"tag": "counting", "include": [{"class": "dog", "count": 4}], "exclude": [{"class": "dog", "count": 5}],
             "prompt": "a photo of four dogs"},
            {"tag": "counting", "include": [{"class": "cat", "count": 2}], "exclude": [{"class": "cat", "count": 3}],
             "prompt": "a photo of two cats"}]
    metadata = tmp_path / "evaluation_metadata.jsonl"
    metadata.write_text("".join(json.dumps(r) + "\n" for r in rows))
    options = [f"geneval.detector={tiny_models / 'owl'}", "geneval.threshold=0.0",  # the metadata: --prompts_path
               f"geneval.colors={tiny_models / 'clip'}"]
    out = tmp_path / "systems"
    result = run_cli("eval", "--model", tiny_pipeline_dirs["sd1"], "--prompts", "geneval", "--prompts_path", metadata,
                     "--rewards", "geneval", "--judge", "geneval", *[a for o in options for a in ("--reward_option", o)],
                     "--num_inference_steps", 2, "--output_dir", out, "--system", "base=",
                     "--system", "kw=keywords,keywords.keywords=sharp focus")
    assert result.exit_code == 0, result.output
    assert "geneval by category (geneval, mean [95 % interval])" in result.output
    table = json.loads((out / "systems.json").read_text())["by_category"]["geneval"]
    assert list(table) == ["counting", "single_object", "overall"]
    for system in ("base", "kw"):
        tags = [table[t][system]["mean"] for t in ("counting", "single_object")]
        assert table["overall"][system]["mean"] == pytest.approx(sum(tags) / 2)
        assert table["single_object"][system]["n"] == 2 and all(0 <= v <= 1 for v in tags)
    summary = json.loads((out / "geneval" / "base" / "summary.json").read_text())
    assert set(summary["by_category_ci95"]) == {"counting", "single_object"}
    assert summary["judged_with"]["geneval"].startswith("GenEval's rules on OWLv2 (") and "judged by geneval (GenEval's rules on OWLv2" in result.output
    rows = [json.loads(line) for line in (out / "geneval" / "base" / "scores.jsonl").read_text().splitlines()]
    assert all(isinstance(r["details"]["geneval"]["reasons"], list) for r in rows)
    assert [r["scores"]["geneval"] for r in rows] == [float(not r["details"]["geneval"]["reasons"]) for r in rows]

    # the question judge: DPG-Bench's table, the share of each question category right, and the mean image score
    blip = save_tiny_blip_vqa(tmp_path / "blip")
    result = run_cli("eval", "--model", tiny_pipeline_dirs["sd1"], "--prompts", "geneval", "--prompts_path", metadata,
                     "--rewards", "vqa", "--reward_option", f"vqa.model={blip}", "--num_inference_steps", 2,
                     "--output_dir", tmp_path / "questions", "--system", "base=", "--system", "kw=keywords")
    assert result.exit_code == 0, result.output
    assert "by question category (vqa, share of questions right" in result.output and "BLIP-VQA (" in result.output
    table = json.loads((tmp_path / "questions" / "systems.json").read_text())["by_question_category"]["geneval"]
    assert list(table) == ["count", "entity", "overall"]
    rows = [json.loads(line) for line in (tmp_path / "questions" / "geneval" / "base" / "scores.jsonl").read_text().splitlines()]
    asked = {c: sum(r["details"]["vqa"]["questions"].get(c, [0, 0])[1] for r in rows) for c in ("count", "entity")}
    assert asked == {"entity": 4, "count": 2} and table["entity"]["base"]["n"] == 4  # two counting prompts ask counts
    right = sum(r["details"]["vqa"]["questions"]["entity"][0] for r in rows)
    assert table["entity"]["base"]["mean"] == right / 4
    assert table["overall"]["base"]["mean"] == pytest.approx(sum(r["scores"]["vqa"] for r in rows) / 4)


class FakeVQA:
    """Answers from a table {question text: answer}."""

    name = "fake"

    def __init__(self, answers):
        self.answers = answers

    def answer(self, images, questions):
        return [[self.answers.get(q.text, "no") for q in asked] for asked in questions]


def test_questions_from_geneval_metadata_and_dsg_dependencies():
    from promptlift.rewards.questions import QuestionReward, geneval_questions

    meta = {"include": [{"class": "cat", "count": 1}, {"class": "dog", "count": 2, "color": "red",
                                                       "position": ["right of", 0]}]}
    questions = geneval_questions(meta)
    assert [(q.text, q.category, q.parents) for q in questions] == [
        ("Is there a cat?", "entity", ()), ("Is there a dog?", "entity", ()),
        ("Are there two dogs?", "count", (1,)), ("Is the dog red?", "attribute", (1,)),
        ("Is the dog right of the cat?", "relation", (1, 0))]
    exact = geneval_questions({"include": [{"class": "cat", "count": 1}], "exclude": [{"class": "cat", "count": 2}]})
    assert [q.text for q in exact] == ["Is there a cat?", "Is there exactly one cat?"]
    images = torch.rand(2, 3, 8, 8)
    reward = QuestionReward({"p": questions}, FakeVQA({"Is there a cat?": "yes", "Is there a dog?": "no",
                                                       "Are there two dogs?": "yes", "Is the dog red?": "yes",
                                                       "Is the dog right of the cat?": "yes"}))
    assert reward(images[:1], ["p"]).tolist() == pytest.approx([0.2])  # a "yes" below a missing dog is wrong (DSG)
    assert reward.last_details == [{"questions": {"entity": [1, 2], "count": [0, 1], "attribute": [0, 1],
                                                  "relation": [0, 1]}}]
    with pytest.raises(ValueError, match="no questions for the prompt 'q'"):
        reward(images[:1], ["q"])


def test_dpg_benchs_question_file_is_read_with_its_dependencies(tmp_path):
    from promptlift.rewards.questions import read_dpg_questions

    path = tmp_path / "dpg_bench.csv"
    path.write_text("item_id,text,keywords,proposition_id,dependency,category_broad,category_detailed,tuple,"
                    "question_natural_language\n"
                    "0,eight cabbages in a field,,1,0,entity,whole,entity - whole (cabbage),Are there cabbages?\n"
                    "0,eight cabbages in a field,,2,1,other,count,other - count (cabbage ==8),Are there eight cabbages?\n"
                    "0,eight cabbages in a field,,3,0,entity,whole,entity - whole (field),Is there a field?\n")
    questions = read_dpg_questions(path)["eight cabbages in a field"]
    assert [(q.category, q.parents) for q in questions] == [("entity", ()), ("other", (0,)), ("entity", ())]
    path.write_text("item_id,text\n0,x\n")
    with pytest.raises(ValueError, match="lacks DPG-Bench's columns"):
        read_dpg_questions(path)
    with pytest.raises(ValueError, match="get dpg_bench.csv from the ELLA repository"):
        read_dpg_questions(tmp_path / "missing.csv")


def test_blip_vqa_answers_through_its_loading_code(tmp_path):
    """A tiny random BLIP-VQA saved and loaded as from a Hub id: one lower-cased answer per question."""
    from helpers import save_tiny_blip_vqa
    from promptlift.rewards.questions import BlipVQA, Question

    vqa = BlipVQA(str(save_tiny_blip_vqa(tmp_path / "blip")), max_new_tokens=2)
    answers = vqa.answer(torch.rand(2, 3, 40, 40), [[Question("is there a dog?", "entity"),
                                                     Question("is there a cat?", "entity")], []])
    assert len(answers[0]) == 2 and answers[1] == [] and all(a == a.lower() for a in answers[0])


def test_vqascore_asks_whether_the_figure_shows_the_prompt():
    from promptlift.rewards.questions import VQAScore

    class Yes:
        name = "fake"

        def yes_probability(self, image, questions):
            return [0.75 if "'two red boats'" in q and q.endswith("Please answer yes or no.") else 0.25 for q in questions]

    scores = VQAScore(Yes())(torch.rand(2, 3, 32, 32), ["two red boats", "a cat"])
    assert scores.tolist() == [0.75, 0.25]
