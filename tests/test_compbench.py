"""T2I-CompBench's judge: its prompts parsed as its scorers read them, its position rule on constructed boxes, each
category scored by its method, the models through their loading code, and eval's category table."""

import json
from pathlib import Path

import pytest
import torch

from promptlift.rewards.compbench import (IOU_THRESHOLD, TWO_OBJECTS, CompBenchReward, noun_phrases,
                                          read_categories, spatial_relation, spatial_score)
from promptlift.rewards.following import Detection

BENCH = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "t2i_compbench"
needs_bench = pytest.mark.skipif(not BENCH.is_dir(), reason="../shared/benchmarks is not beside the project")


def at(x0, y0, x1, y1, label="a"):
    return Detection(label, 0.9, (x0, y0, x1, y1))


def test_spatial_prompts_name_two_objects_and_a_relation():
    assert spatial_relation("a giraffe next to a lamp") == ("giraffe", "next to", "lamp")
    assert spatial_relation("a girl on the top of a frog") == ("girl", "on the top of", "frog")
    assert spatial_relation("a cat on top of a bench")[1] == "on the top of"
    assert spatial_relation("a lone tree in the snow") is None


@needs_bench
def test_every_spatial_val_prompt_parses_and_two_object_prompts_split_in_two():
    """All 300 spatial val prompts give two objects and a relation; the attribute val files' two-object prompts (the
    counts the docs give) each give their two phrases without spaCy; the rest are sentences, refused without spaCy
    unless cut approximately."""
    read = lambda name: [line for line in (BENCH / name).read_text().splitlines() if line.strip()]  # noqa: E731
    parsed = [spatial_relation(p) for p in read("spatial_val.txt")]
    assert len(parsed) == 300 and all(r and r[0] and r[2] for r in parsed)
    for name, count in (("color_val.txt", 237), ("shape_val.txt", 214), ("texture_val.txt", 197)):
        two = [p for p in read(name) if TWO_OBJECTS.match(p)]
        assert len(two) == count and all(len(noun_phrases(p)) == 2 for p in two), name
    assert noun_phrases("a green bench and a blue bowl") == ["a green bench", "a blue bowl"]
    sentences = {p: "color" for p in read("color_val.txt") if not TWO_OBJECTS.match(p)}
    with pytest.raises(ValueError, match="63 attribute prompts are sentences.*split_sentences=true"):
        CompBenchReward(sentences)
    assert "sentences cut" in CompBenchReward(sentences, split_sentences=True).judged_with


def test_the_position_rule_on_constructed_boxes():
    """Direction from the centres, mostly along the named axis; overlap above the IoU threshold scales the score
    down; "next to" by distance in image sides."""
    left, right = at(0, 40, 20, 60), at(60, 40, 80, 60)
    assert spatial_score("on the left of", left, right, 100) == 1.0
    assert spatial_score("on the right of", left, right, 100) == 0.0
    assert spatial_score("on the right of", right, left, 100) == 1.0
    top, bottom = at(40, 0, 60, 20), at(40, 70, 60, 90)
    assert spatial_score("on the top of", top, bottom, 100) == 1.0 and spatial_score("on the bottom of", bottom, top, 100) == 1.0
    assert spatial_score("on the left of", top, bottom, 100) == 0.0  # apart mostly vertically
    overlapping, near = at(10, 40, 50, 60), at(30, 40, 70, 60)  # left of it, but overlapping by an IoU of 1/3
    iou = (20 * 20) / (40 * 20 + 40 * 20 - 20 * 20)
    assert iou > IOU_THRESHOLD and spatial_score("on the left of", overlapping, near, 100) == pytest.approx(IOU_THRESHOLD / iou)
    assert spatial_score("next to", left, right, 100) == 1.0  # same row: within the distance in y
    far = at(90, 90, 100, 100)
    d = 95 - 10  # the larger centre offset
    assert spatial_score("near", left, far, 100) == pytest.approx(150 / 512 * 100 / d)


class Fakes:
    """A VQA whose "yes" probability is given per question, a detector that finds given boxes, a CLIP of a given
    score."""

    name = "fake"

    def __init__(self, yes=None, boxes=None, clip=30.0):
        self.yes, self.boxes, self.clip_score = yes or {}, boxes or {}, clip

    def yes_probability(self, image, questions):
        return [self.yes.get(q, 0.5) for q in questions]

    def detect(self, images, classes):
        return [[self.boxes[c] for c in names if c in self.boxes] for names in classes]

    def clip(self, images, prompts):
        return torch.full((len(prompts),), self.clip_score)


def test_each_category_is_scored_by_its_method():
    fakes = Fakes(yes={"a red dog?": 0.8, "a blue cat?": 0.5}, boxes={"dog": at(0, 0, 10, 10, "dog"),
                                                                     "cat": at(50, 0, 60, 10, "cat")}, clip=31.0)
    categories = {"a red dog and a blue cat": "color", "a dog on the left of a cat": "spatial",
                  "a cat on the left of a dog": "spatial", "a dog on the left of a horse": "spatial",
                  "A dog is chasing a cat": "non_spatial"}
    judge = CompBenchReward(categories, vqa=fakes, detector=fakes, clip=fakes.clip)
    scores = judge(torch.rand(5, 3, 64, 64), list(categories))
    assert scores.tolist() == pytest.approx([0.4, 1.0, 0.0, 0.0, 0.31])  # 0.8 x 0.5; right; wrong; no horse; cosine
    assert judge.last_details[0] == {"parts": {"attribute": pytest.approx(0.4)}}
    with pytest.raises(ValueError, match="no category for the prompt 'a cow'.*--prompts t2i-compbench"):
        judge(torch.rand(1, 3, 64, 64), ["a cow"])
    with pytest.raises(ValueError, match="complex prompts need spaCy.*en_core_web_sm"):
        CompBenchReward({"The red hat was on top of the coat rack.": "complex"}, vqa=fakes, detector=fakes, clip=fakes.clip)
    with pytest.raises(ValueError, match="not numeracy"):
        CompBenchReward({"two dogs": "numeracy"})


def test_complex_prompts_average_the_three_methods():
    class Chunks:  # spaCy's noun chunks for the one prompt, as en_core_web_sm gives them
        def __call__(self, text):
            words = {"The red hat was": ["hat"], "the brown coat rack.": ["rack"]}
            chunks = {"The red hat was on top of the brown coat rack.": ["The red hat", "the brown coat rack"]}
            doc = type("Doc", (), {})()
            doc.noun_chunks = [type("Chunk", (), {"text": c, "root": type("Root", (), {"text": c.split()[-1]})()})()
                               for c in chunks.get(text, [])] or [
                type("Chunk", (), {"text": w, "root": type("Root", (), {"text": w})()})() for w in words.get(text, [])]
            return doc

    prompt = "The red hat was on top of the brown coat rack."
    fakes = Fakes(yes={"The red hat?": 0.9, "the brown coat rack?": 0.5},
                  boxes={"hat": at(0, 0, 10, 10, "hat"), "rack": at(0, 50, 10, 60, "rack")}, clip=30.0)
    judge = CompBenchReward({prompt: "complex"}, vqa=fakes, detector=fakes, clip=fakes.clip, nlp=Chunks())
    score = judge(torch.rand(1, 3, 64, 64), [prompt])
    assert judge.last_details[0]["parts"] == pytest.approx({"attribute": 0.45, "spatial": 1.0, "clip": 0.3})
    assert score.item() == pytest.approx((0.45 + 1.0 + 0.3) / 3)


def write_compbench_folder(folder, prompts):
    """T2I-CompBench's layout: CATEGORY_val.txt, a prompt per line."""
    folder.mkdir(parents=True, exist_ok=True)
    for category, lines in prompts.items():
        (folder / f"{category}_val.txt").write_text("\n".join(lines) + "\n")
    return folder


PROMPTS = {"color": ["a red dog and a blue cat", "a green bench and a red car"],
           "spatial": ["a dog on the left of a cat", "a cat next to a bench"],
           "non_spatial": ["A dog is chasing a cat", "A man is reading a book"]}


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    from helpers import save_tiny_blip_vqa, save_tiny_owl_and_clip

    root = save_tiny_owl_and_clip(tmp_path_factory.mktemp("compbench"))
    save_tiny_blip_vqa(root / "blip")
    return root


def test_the_registered_judge_loads_each_model_its_categories_need(tmp_path, tiny_models):
    """From T2I-CompBench's folder and a comma-separated subset: prompts of three categories (ids naming their
    category), the three models loaded from saved folders as from Hub ids, "yes" probabilities in [0, 1]; the
    weights listed are only those the categories need."""
    from promptlift.data.prompt_sets import load_prompt_set
    from promptlift.rewards import MissingWeightsError, check_rewards, load_reward

    folder = write_compbench_folder(tmp_path / "t2i", PROMPTS)
    records = load_prompt_set("t2i-compbench", str(folder), "color,spatial,non_spatial")
    assert [r["id"] for r in records[:3]] == ["color-0", "color-1", "spatial-0"]
    assert [r["category"] for r in records] == ["color"] * 2 + ["spatial"] * 2 + ["non_spatial"] * 2
    judge = load_reward("t2i-compbench", prompts=str(folder), subset="color,spatial,non_spatial",
                        vqa=str(tiny_models / "blip"), detector=str(tiny_models / "owl"),
                        clip=str(tiny_models / "clip"), threshold=0.0)
    held = list(judge.modules())  # `reward.to(device)` moves every model with it
    assert all(any(m is model for m in held) for model in (judge.vqa.model, judge.detector.model, judge.clip.model))
    probabilities = judge.vqa.yes_probability(torch.rand(3, 40, 40), ["a red dog?", "a blue cat?"])
    assert len(probabilities) == 2 and all(0 <= p <= 1 for p in probabilities)
    prompts = [r["prompt"] for r in records]
    scores = judge(torch.rand(6, 3, 48, 48), prompts)
    assert scores.shape == (6,) and all(-1 <= s <= 1 for s in scores.tolist())
    assert [set(d["parts"]) for d in judge.last_details] == [{"attribute"}] * 2 + [{"spatial"}] * 2 + [{"clip"}] * 2
    with pytest.raises(MissingWeightsError) as e:
        check_rewards(["t2i-compbench"], {"t2i-compbench": {"subset": "color", "vqa": "no/blip", "detector": "no/owl"}})
    assert "no/blip" in str(e.value) and "no/owl" not in str(e.value)  # colour prompts need no detector
    with pytest.raises(ValueError, match="takes one subset, not 'a,b'"):
        load_prompt_set("drawbench", str(folder), "a,b")
    assert read_categories(folder / "spatial_val.txt", "spatial") == {p: "spatial" for p in PROMPTS["spatial"]}
    with pytest.raises(ValueError, match="shape prompts .*shape_val.txt' are missing"):
        read_categories(folder, "color,shape")
    with pytest.raises(ValueError, match="'None' is not their folder.*t2i-compbench.prompts=FOLDER"):
        read_categories(None)


def test_eval_prints_t2i_compbenchs_category_table(tmp_path, tiny_models, tiny_pipeline_dirs):
    """`promptlift eval --prompts t2i-compbench --prompts_path DIR --prompts_subset color,spatial,non_spatial
    --rewards t2i-compbench --system ...`: the judge gets the folder and categories from eval; a row per category,
    then overall, for each system."""
    from helpers import run_cli

    folder = write_compbench_folder(tmp_path / "t2i", PROMPTS)
    options = [f"t2i-compbench.vqa={tiny_models / 'blip'}", f"t2i-compbench.detector={tiny_models / 'owl'}",
               f"t2i-compbench.clip={tiny_models / 'clip'}", "t2i-compbench.threshold=0.0"]
    out = tmp_path / "systems"
    result = run_cli("eval", "--model", tiny_pipeline_dirs["sd1"], "--prompts", "t2i-compbench", "--prompts_path", folder,
                     "--prompts_subset", "color,spatial,non_spatial", "--rewards", "t2i-compbench",
                     *[a for o in options for a in ("--reward_option", o)], "--num_inference_steps", 2,
                     "--output_dir", out, "--system", "base=", "--system", "kw=keywords,keywords.keywords=sharp focus")
    assert result.exit_code == 0, result.output
    assert "t2i-compbench by category (t2i-compbench, mean [95 % interval])" in result.output
    table = json.loads((out / "systems.json").read_text())["by_category"]["t2i-compbench"]
    assert list(table) == ["color", "non_spatial", "spatial", "overall"]
    assert table["color"]["kw"]["n"] == 2 and table["overall"]["base"]["n"] == 6
