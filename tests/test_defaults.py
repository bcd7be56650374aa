"""Defaults that follow the model: the world's prompt sets and judges only for the embedded model; on any other the
published rewards, prompts the user names, and the world's attribute judge only when asked for by name."""

import json
from pathlib import Path

import pytest

from promptlift.config import load_config
from promptlift.data.curation import CurateConfig
from promptlift.evaluation.compare import CompareConfig
from promptlift.evaluation.run import EvalConfig
from promptlift.methods.quality_tuning.config import QualityTuningConfig
from promptlift.methods.refiner.interactive import RefineConfig
from promptlift.methods.textcraftor.config import TextCraftorConfig
from promptlift.pipeline import default_model_path
from promptlift.profiles import DEFAULT_PROFILE
from promptlift.judges.plugin import WORLD

REAL = DEFAULT_PROFILE.defaults
from helpers import run_cli


@pytest.fixture
def prompts(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("two red boats at sunset\na lone white tree in the snow\n")
    return path


def test_eval_takes_the_worlds_sets_and_judges_only_on_the_embedded_model(tiny_pipeline_dirs, prompts, tmp_path):
    for model in (None, str(default_model_path())):
        cfg = EvalConfig(model=model)
        assert cfg.prompts == "world-narrative-val" and cfg.rewards == list(WORLD.eval_rewards)
    other = str(tiny_pipeline_dirs["sd1"])
    with pytest.raises(ValueError, match="no `prompts` given, and .* declares no prompts of its own"):
        EvalConfig(model=other)
    cfg = EvalConfig(model=other, prompts=str(prompts))
    assert cfg.rewards == ["clip-score", "laion-aesthetic", "pickscore", "hpsv2", "imagereward"]
    # the published rewards' weights are not here: the run stops before any image, listing every one missing
    result = run_cli("eval", "--model", other, "--prompts", prompts, "--output_dir", tmp_path / "run")
    assert result.exit_code != 0 and "rewards cannot start; missing:" in result.output
    assert all(f"- {name}:" in result.output for name in ("clip-score", "laion-aesthetic", "pickscore", "hpsv2"))
    assert not list((tmp_path / "run").glob("images/*"))
    assert EvalConfig(model=other, prompts="world-literal", rewards=["world-clip"]).rewards == ["world-clip"]  # by name


def test_compare_curate_and_refine_judge_by_the_model_or_the_data(tiny_pipeline_dirs, tmp_path, world_set):
    for name, model in (("a", None), ("b", None), ("c", str(tiny_pipeline_dirs["sd1"]))):
        (tmp_path / name).mkdir()
        (tmp_path / name / "scores.jsonl").write_text("")
        (tmp_path / name / "config.json").write_text(json.dumps({"model": model}))
    assert CompareConfig(run_a=tmp_path / "a", run_b=tmp_path / "b").judge == "world-aesthetic"
    assert CompareConfig(run_a=tmp_path / "a", run_b=tmp_path / "c").judge == REAL.judge == "imagereward"
    world = CurateConfig(input=str(world_set), output_dir=tmp_path / "cur")
    assert (world.aesthetic_reward, world.clip_reward) == ("world-aesthetic-reward", "world-clip")
    (tmp_path / "photos").mkdir()
    real = CurateConfig(input=str(tmp_path / "photos"), output_dir=tmp_path / "cur2")
    assert (real.aesthetic_reward, real.clip_reward) == ("laion-aesthetic", "clip-score")
    assert RefineConfig(prompt="a boat").reward == "world-aesthetic-reward"
    with pytest.raises(ValueError, match="no `refiner` given, and the bundle's is the embedded model's"):
        RefineConfig(prompt="a boat", model=str(tiny_pipeline_dirs["sd1"]))
    assert RefineConfig(prompt="a boat", model=str(tiny_pipeline_dirs["sd1"]), refiner=tmp_path).reward == "laion-aesthetic"


def test_trainers_hold_out_what_the_user_names_on_another_model(tiny_pipeline_dirs, prompts, world_set, tiny_bundle_dir):
    other = str(tiny_pipeline_dirs["sd1"])
    embedded = TextCraftorConfig(prompts=str(prompts))
    assert (embedded.eval_prompts, embedded.eval_judge) == ("literal", "world-aesthetic")
    assert embedded.rewards == list(WORLD.train_rewards)
    with pytest.raises(ValueError, match="no `eval_prompts` given"):
        TextCraftorConfig(prompts=str(prompts), pretrained_model_name_or_path=other)
    cfg = TextCraftorConfig(prompts=str(prompts), pretrained_model_name_or_path=other, eval_prompts=str(prompts))
    assert cfg.rewards == list(REAL.train_rewards) and cfg.eval_judge == "imagereward"
    # the CLI and YAML take --model for the base model
    assert load_config(TextCraftorConfig, None, {"model": other, "prompts": str(prompts),
                                                 "eval_prompts": str(prompts)}).pretrained_model_name_or_path == other
    with pytest.raises(ValueError, match="`max_semantic_drop` reads a content judge .* drop --max_semantic_drop"):
        QualityTuningConfig(train_data_dir=world_set, pretrained_model_name_or_path=other, eval_prompts="literal",
                            max_semantic_drop=0.05)
    asked = QualityTuningConfig(train_data_dir=world_set, pretrained_model_name_or_path=other, eval_prompts="literal",
                                max_semantic_drop=0.05, judge_bundle=tiny_bundle_dir)  # asked for by name
    assert asked.max_semantic_drop == 0.05 and QualityTuningConfig(train_data_dir=world_set).max_semantic_drop == 0.03


RECIPES = sorted((Path(__file__).resolve().parents[1] / "configs").glob("sd*/*.yaml"))


@pytest.mark.parametrize("path", RECIPES, ids=[f"{p.parent.name}/{p.stem}" for p in RECIPES])
def test_every_real_model_recipe_loads_with_only_its_data_given(path, world_set, prompts):
    """configs/{sd15,sd21,sdxl}: the keys are valid and the checks pass; only the data a user brings is swapped in.
    (Each trains 2 steps on the random full-size pipelines in the slow suite: tests/test_real_size.py.)"""
    from promptlift.methods import METHODS
    from promptlift.methods.sur_adapter.triples import TriplesConfig

    classes = {"curate": CurateConfig, "sur-triples": TriplesConfig, **{n: s.config for n, s in METHODS.items()}}
    data = {"curate": {"input": str(world_set)}, "sur-triples": {"input": str(world_set), "simple_column": "narrative"},
            "quality-tuning": {"train_data_dir": str(world_set)}, "sur-adapter": {"train_data_dir": str(world_set)},
            "refiner": {"train_data": str(prompts)}, "textcraftor": {"prompts": str(prompts)}}[path.stem]
    cfg = load_config(classes[path.stem], path, data)
    if path.stem in METHODS:
        assert cfg.pretrained_model_name_or_path.split("/")[0] in ("stable-diffusion-v1-5", "stabilityai")
        assert not cfg.eval_judge.startswith("world-") and cfg.mixed_precision == "bf16"
    if path.stem == "sur-adapter":  # the design that works, reading what `sur-triples` writes
        assert (cfg.simple_column, cfg.complex_target, cfg.llm_tokens) == ("simple", "tokens", True)
