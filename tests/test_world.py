"""The world: determinism, readable attributes, prompt round trips, disjoint pools, datasets, CLI."""

import json

import numpy as np
import pytest

from promptlift.world import (
    ATTRIBUTES,
    FACTORS,
    Quality,
    aesthetic_score,
    complex_prompt,
    literal_prompt,
    narrative_prompt,
    parse_prompt,
    render,
    render_image,
    sample_scene,
    scene_seed,
)
from promptlift.world import prompts as P
from promptlift.world.config import DatasetConfig
from promptlift.world.dataset import build_dataset, iter_prompt_set, world_stats
from promptlift.world.config import StatsConfig
from promptlift.world.render import COLOR_RGB, _PALETTE, _tones
from helpers import run_cli

SCENES = [sample_scene(scene_seed(0, i)) for i in range(2000)]


def test_same_seed_same_scene_and_bytes():
    a, b = sample_scene(123), sample_scene(123)
    assert a == b
    assert render_image(a).tobytes() == render_image(b).tobytes()
    assert render_image(a, 128).tobytes() == render_image(b, 128).tobytes()
    assert sample_scene(124) != a


def test_every_value_is_drawn_and_objects_are_at_least_16px():
    for name, values in ATTRIBUTES.items():
        assert {getattr(s, name) for s in SCENES} == set(values)
    for s in SCENES:
        assert len(s.boxes) == s.count
        for x0, y0, x1, y1 in s.boxes:
            assert (x1 - x0) * 64 >= 16 and (y1 - y0) * 64 >= 16
            visible_w = min(x1, 1) - max(x0, 0)
            assert visible_w >= 0.55 * (x1 - x0), "an object must stay mostly in frame"


@pytest.mark.parametrize("style", ["complex", "literal", "narrative-train", "narrative-val", "mixed-train", "mixed-val"])
def test_prompts_parse_back_to_the_scene(style):
    make = {"complex": complex_prompt, "literal": literal_prompt,
            "narrative-train": lambda s: narrative_prompt(s, "train"),
            "narrative-val": lambda s: narrative_prompt(s, "val"),
            "mixed-train": lambda s: P.mixed_prompt(s, "train"), "mixed-val": lambda s: P.mixed_prompt(s, "val")}[style]
    wrong = [(make(s), s.attributes) for s in SCENES if parse_prompt(make(s)) != s.attributes]
    assert not wrong, wrong[:3]


def test_parser_reports_contradictions_as_unknown():
    assert parse_prompt("two red boats and three blue boats at night")["count"] is None
    assert parse_prompt("two crimson boats")["color"] == "red"
    assert parse_prompt("a lone fir")["kind"] == "tree" and parse_prompt("a lone fir")["setting"] is None


def test_narrative_pools_are_disjoint_and_mostly_indirect():
    train, val = P.pool_phrases("train"), P.pool_phrases("val")
    assert not train & val
    for a in train:
        for b in val:
            assert f" {a} " not in f" {b} " and f" {b} " not in f" {a} ", (a, b)
    for pool in ("train", "val"):
        assert P.indirect_share(SCENES, pool) >= 0.6


def test_mixed_prompts_reword_one_or_two_attributes_of_the_literal_prompt():
    """"a lone white tree in the snow": the literal prompt's frame, one or two attributes in a pool's words."""
    train_only = {p for p in P.pool_phrases("train") if "{" not in p}
    reworded = []
    for s in SCENES[:500]:
        plain, mixed = literal_prompt(s).split(), P.mixed_prompt(s, "val")
        text = " " + P._normalise(mixed) + " "
        assert not [p for p in train_only if f" {p.lower()} " in text], text
        reworded.append(sum(word not in plain for word in set(mixed.split())) > 0)
        assert mixed != literal_prompt(s)
    assert all(reworded)


def test_narrative_val_uses_only_val_phrasings():
    train_only = {p for p in P.pool_phrases("train") if "{" not in p}
    for s in SCENES[:500]:
        text = " " + P._normalise(narrative_prompt(s, "val")) + " "
        assert not [p for p in train_only if f" {p.lower()} " in text], text


def test_complex_prompts_carry_exactly_the_quality_keywords_that_hold():
    best = sample_scene(5, quality=Quality.best())
    assert all(k in complex_prompt(best) for k, _ in P.QUALITY_KEYWORDS)
    worst = sample_scene(5, quality=Quality(0, 0, 0, 1, 0, 1))
    assert not any(k in complex_prompt(worst) for k, _ in P.QUALITY_KEYWORDS)
    assert literal_prompt(best) == literal_prompt(worst)


def test_aesthetic_score_range_and_thin_tail():
    assert aesthetic_score(Quality.best()) == pytest.approx(10.0)
    assert aesthetic_score(Quality(0, 0, 0, 1, 0, 1)) == pytest.approx(1.0)
    scores = np.array([s.aesthetic for s in SCENES])
    assert 3.5 < np.median(scores) < 6.0, "the bulk is mediocre"
    assert 0.001 < (scores >= 8).mean() < 0.04, "a thin tail of needles"


@pytest.mark.parametrize("factor", FACTORS)
def test_each_quality_factor_changes_the_picture(factor):
    base = dict(lighting=0.5, detail=0.5, harmony=0.5, clutter=0.5, framing=0.5, artifacts=0.5)
    lo, hi = ({**base, factor: 0.0}, {**base, factor: 1.0})
    a = render(sample_scene(7, quality=Quality(**lo))).astype(int)
    b = render(sample_scene(7, quality=Quality(**hi))).astype(int)
    assert np.abs(a - b).mean() > 2.0
    assert aesthetic_score(Quality(**lo)) != aesthetic_score(Quality(**hi))


def test_no_object_colour_vanishes_on_any_background():
    """Fill or outline stands out from the sky and the ground of every setting."""
    for setting, (top, horizon, ground) in _PALETTE.items():
        for color in COLOR_RGB:
            _, _, _, outline = _tones(color, 0.0)
            for bg in (horizon, ground):
                fill_d = np.abs(np.subtract(COLOR_RGB[color], bg)).sum()
                line_d = np.abs(np.subtract(outline, bg)).sum()
                assert max(fill_d, line_d) >= 120, (setting, color, bg)
                assert np.abs(np.subtract(COLOR_RGB[color], outline)).sum() >= 150


def test_world_stats_reports_disjoint_pools():
    stats = world_stats(StatsConfig(num_scenes=500))
    assert stats["pools_disjoint"] and stats["shared_phrases"] == []
    assert stats["indirect_share"]["val"] >= 0.6


def test_dataset_builds_atomically_and_reproducibly(tmp_path):
    cfg = DatasetConfig(num_scenes=120, output_dir=tmp_path / "a", shard_size=50, num_workers=2)
    build_dataset(cfg)
    rows = [json.loads(line) for line in (tmp_path / "a" / "metadata.jsonl").read_text().splitlines()]
    assert len(rows) == 120 and rows[0]["file_name"] == "images/00000/0000000.png"
    assert rows[119]["file_name"] == "images/00002/0000119.png"
    assert all((tmp_path / "a" / r["file_name"]).is_file() for r in rows)
    assert parse_prompt(rows[5]["narrative"]) == {k: rows[5][k] for k in ATTRIBUTES}
    build_dataset(DatasetConfig(num_scenes=120, output_dir=tmp_path / "b", shard_size=50, num_workers=1))
    for r in rows[::17]:
        assert (tmp_path / "a" / r["file_name"]).read_bytes() == (tmp_path / "b" / r["file_name"]).read_bytes()
    with pytest.raises(ValueError, match="already holds files; pass `--overwrite`"):
        build_dataset(cfg)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]


def test_dataset_loads_with_hf_imagefolder(tmp_path):
    datasets = pytest.importorskip("datasets")
    build_dataset(DatasetConfig(num_scenes=20, output_dir=tmp_path / "d", num_workers=1))
    ds = datasets.load_dataset("imagefolder", data_dir=str(tmp_path / "d"), split="train")
    assert len(ds) == 20 and ds[0]["image"].size == (64, 64)
    assert set(ATTRIBUTES) | {"complex", "literal", "narrative", "aesthetic"} <= set(ds.column_names)


def test_failed_build_leaves_nothing(tmp_path, monkeypatch):
    import promptlift.world.dataset as D

    def boom(scene, size):
        raise RuntimeError("disk full")

    monkeypatch.setattr(D, "render_image", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        build_dataset(DatasetConfig(num_scenes=10, output_dir=tmp_path / "d", num_workers=1))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["complex", "literal", "narrative-train", "narrative-val", "mixed-val"])
def test_prompt_sets_parse_to_expected_and_are_held_out(name):
    lines = list(iter_prompt_set(name, 50, seed=0))
    assert len(lines) == 50
    assert all(parse_prompt(x["prompt"]) == x["expected"] for x in lines)
    dataset_seeds = {scene_seed(0, i) for i in range(50)}
    assert not dataset_seeds & {x["scene_seed"] for x in lines}


def run(*args):
    return run_cli(*args)


def test_world_cli_end_to_end(tmp_path):
    r = run("world", "render", "--num_scenes", 2, "--output_dir", tmp_path / "r")
    assert r.exit_code == 0 and "narrative:" in r.output and len(list((tmp_path / "r").glob("*.png"))) == 2
    r = run("world", "dataset", "--num_scenes", 30, "--output_dir", tmp_path / "d", "--num_workers", 1)
    assert r.exit_code == 0, r.output
    r = run("world", "prompts", "--name", "literal", "--num_prompts", 5, "--output", tmp_path / "p.jsonl")
    assert r.exit_code == 0 and len((tmp_path / "p.jsonl").read_text().splitlines()) == 5
    r = run("world", "contact-sheet", "--num_scenes", 3, "--output", tmp_path / "s.png")
    assert r.exit_code == 0 and (tmp_path / "s.png").stat().st_size > 1000
    r = run("world", "stats", "--num_scenes", 200)
    assert r.exit_code == 0 and json.loads(r.output)["pools_disjoint"] is True
    r = run("world", "dataset", "--num_scenes", 0)
    assert r.exit_code != 0 and "`num_scenes` must be >= 1, got 0" in r.output
