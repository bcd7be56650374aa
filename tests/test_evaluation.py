"""Prompt sets, eval runs (resume, summary, report), win rates and compare, end to end on tiny parts."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from click.testing import CliRunner

from promptlift.cli import cli
from promptlift.data import PROMPT_SETS, load_prompt_set
from promptlift.evaluation.config import EvalConfig
from promptlift.stats import bootstrap_mean, win_rate
from helpers import run_cli

BENCH = Path(__file__).resolve().parents[2] / "shared" / "benchmarks"
needs_bench = pytest.mark.skipif(not BENCH.is_dir(), reason="../shared/benchmarks is not beside the project")


@needs_bench
@pytest.mark.parametrize("name, path, subset, rows, first", [
    ("partiprompts", "PartiPrompts.tsv", None, 1632, "bond"),
    ("drawbench", ".", None, 200, "A red colored car."),
    ("drawbench", ".", "Counting", 19, None),
    ("t2i-compbench", "t2i_compbench", "numeracy", 300, "two boys"),
    ("geneval", "geneval_evaluation_metadata.jsonl", None, 553, "a photo of a bench"),
    ("geneval", "geneval_evaluation_metadata.jsonl", "counting", 80, None),
    ("dpg-bench", "dpg_bench/dpg_bench_prompts.jsonl", None, 1065, None),
    ("pae-coco", "prompt_pairs_and_collections/pae_COCO_test_1k.jsonl", None, 1000, None),
    ("pae-lexica", "prompt_pairs_and_collections/pae_lexica_test_1k.jsonl", None, 1000, None),
])
def test_benchmark_loaders_read_the_shared_copies(name, path, subset, rows, first):
    records = load_prompt_set(name, str(BENCH / path), subset)
    assert len(records) == rows
    assert all(r["prompt"].strip() and r["id"] for r in records)
    assert len({r["id"] for r in records}) == rows
    if first:
        assert records[0]["prompt"] == first


def test_world_sets_and_jsonl_files(tmp_path):
    assert {"world-complex", "world-literal", "world-narrative-train", "world-narrative-val"} <= set(PROMPT_SETS)
    records = load_prompt_set("world-narrative-val", num_prompts=5)
    assert len(records) == 5 and set(records[0]["expected"]) == {"setting", "kind", "color", "count"}
    f = tmp_path / "p.jsonl"
    f.write_text('{"prompt": "a red ball", "expected": {"color": "red"}}\n\n{"prompt": "x", "id": "q"}\n')
    assert [r["id"] for r in load_prompt_set(str(f))] == ["0", "q"]
    f.write_text('{"prompt": "ok"}\n{"text": "no prompt"}\n')
    with pytest.raises(ValueError, match=r"p.jsonl:2 has no non-empty \"prompt\""):
        load_prompt_set(str(f))
    with pytest.raises(ValueError, match="unknown prompt set 'nope'"):
        load_prompt_set("nope")
    with pytest.raises(FileNotFoundError, match="pass the benchmark file"):
        load_prompt_set("partiprompts", str(tmp_path / "missing.tsv"))


def test_bootstrap_and_win_rate_statistics():
    rng = np.random.default_rng(0)
    values = rng.normal(3.0, 1.0, 400)
    s = bootstrap_mean(values)
    assert s["ci95"][0] < 3.0 < s["ci95"][1] and s["ci95"][1] - s["ci95"][0] < 0.4
    assert win_rate([1, 2, 3], [1, 2, 3]) == {"win_rate": 0.5, "ci95": [0.5, 0.5], "n": 3, "ties": 3}
    w = win_rate([2, 2, 0, 1], [1, 1, 1, 1])
    assert w["win_rate"] == pytest.approx((1 + 1 + 0 + 0.5) / 4) and w["ties"] == 1
    with pytest.raises(ValueError, match="equal-length"):
        win_rate([1], [1, 2])


def run(*args):
    return run_cli(*args)


def _eval(model, out, bundle, *extra):
    return run("eval", "--model", model, "--prompts", "world-literal", "--num_prompts", 3, "--seeds", 2,
               "--rewards", "world-attributes", "--rewards", "world-clip",
               "--reward_option", f"world-attributes.bundle_dir={bundle}", "--reward_option", f"world-clip.bundle_dir={bundle}",
               "--judge_bundle", bundle, "--num_inference_steps", 2, "--batch_size", 4, "--output_dir", out, *extra)


def test_eval_run_writes_scores_summary_report_and_resumes(tmp_path, tiny_pipeline_dirs, tiny_bundle_dir, monkeypatch):
    out = tmp_path / "run"
    result = _eval(tiny_pipeline_dirs["sd1"], out, tiny_bundle_dir)
    assert result.exit_code == 0, result.output
    rows = [json.loads(x) for x in (out / "scores.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and all((out / r["image"]).is_file() for r in rows)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n"] == 6 and set(summary["metrics"]) == {"world-attributes", "world-clip"}
    for m in summary["metrics"].values():
        assert m["ci95"][0] <= m["mean"] <= m["ci95"][1]
    assert set(summary["semantic_accuracy"]) == {"setting", "kind", "color", "count", "all"}
    report = (out / "report.html").read_text()
    assert report.count("<img") == 6 and "<svg" in report and "world-clip" in report

    # resume: a crash left 4 finished lines and half a line; only the 2 missing images are made again
    lines = (out / "scores.jsonl").read_text().splitlines()
    (out / "scores.jsonl").write_text("\n".join(lines[:4]) + "\n" + lines[4][:20])
    import promptlift.evaluation.run as R

    made = []
    original = R.generate_images
    monkeypatch.setattr(R, "generate_images", lambda pipe, cfg, prompts, *a, **k: made.extend(prompts) or original(pipe, cfg, prompts, *a, **k))
    assert _eval(tiny_pipeline_dirs["sd1"], out, tiny_bundle_dir).exit_code == 0
    assert len(made) == 2
    again = [json.loads(x) for x in (out / "scores.jsonl").read_text().splitlines()]
    assert [(r["id"], r["seed"]) for r in again] == [(r["id"], r["seed"]) for r in rows]
    np.testing.assert_allclose([r["scores"]["world-clip"] for r in again], [r["scores"]["world-clip"] for r in rows], rtol=1e-5)

    other = _eval(tiny_pipeline_dirs["sd1"], out, tiny_bundle_dir, "--guidance_scale", 3)
    assert other.exit_code != 0 and "holds a run made from other settings (guidance_scale)" in other.output
    assert _eval(tiny_pipeline_dirs["sd1"], out, tiny_bundle_dir, "--guidance_scale", 3, "--overwrite").exit_code == 0
    assert json.loads((out / "config.json").read_text())["guidance_scale"] == 3


def _prompts_file(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_eval_refuses_a_folder_made_from_other_prompts_text(tmp_path, tiny_pipeline_dirs, tiny_bundle_dir):
    prompts, out = tmp_path / "p.jsonl", tmp_path / "run"
    common = ["--prompts", _prompts_file(prompts, [{"id": "a", "prompt": "a red ball"}]), "--seeds", 1]
    assert _eval(tiny_pipeline_dirs["sd1"], out, tiny_bundle_dir, *common).exit_code == 0
    _prompts_file(prompts, [{"id": "a", "prompt": "two blue boats"}])  # same file name and id, another prompt
    again = _eval(tiny_pipeline_dirs["sd1"], out, tiny_bundle_dir, *common)
    assert again.exit_code != 0 and "the prompts' text" in again.output and "--overwrite" in again.output


def test_image_names_are_unique_per_prompt_id(tmp_path, tiny_pipeline_dirs, tiny_bundle_dir):
    from promptlift.evaluation.run import image_stem

    assert image_stem("literal-0003") == "literal-0003"  # safe ids keep their names (existing runs resume)
    assert len({image_stem(i) for i in ("a b", "a_b", "a/b", "x" * 90, "x" * 91)}) == 5
    prompts = _prompts_file(tmp_path / "p.jsonl", [{"id": "a b", "prompt": "a red ball"}, {"id": "a_b", "prompt": "a boat"}])
    out = tmp_path / "run"
    assert _eval(tiny_pipeline_dirs["sd1"], out, tiny_bundle_dir, "--prompts", prompts, "--seeds", 1).exit_code == 0
    rows = [json.loads(x) for x in (out / "scores.jsonl").read_text().splitlines()]
    assert len({r["image"] for r in rows}) == 2 and all((out / r["image"]).is_file() for r in rows)


@pytest.mark.parametrize("option, value, message", [
    ("--num_prompts", 0, "`num_prompts` must be >= 1, got 0"),
    ("--num_prompts", -3, "`num_prompts` must be >= 1, got -3"),
    ("--guidance_scale", "nan", "`guidance_scale` must be a finite number"),
    ("--guidance_scale", "inf", "`guidance_scale` must be a finite number"),
    ("--guidance_scale", "1e30", "`guidance_scale` must be from 0 to 100"),
    ("--lift_option", "textcraftor.alpha=nan", "textcraftor.alpha` must be a finite number"),
    ("--lift_option", "textcraftor.alpha=1e6", "`alpha` must be from 0"),
])
def test_out_of_range_numbers_are_refused_before_any_work(tmp_path, tiny_pipeline_dirs, tiny_bundle_dir, option, value,
                                                          message):
    extra = ["--lift", "textcraftor"] if option == "--lift_option" else []
    result = CliRunner().invoke(cli, [str(a) for a in ["eval", "--prompts", "world-literal", "--rewards", "world-aesthetic",
                                                       "--output_dir", tmp_path / "run", *extra, option, value]])
    assert result.exit_code != 0 and message in result.output, result.output
    assert not (tmp_path / "run" / "scores.jsonl").exists()  # and the folder takes the corrected run


def test_written_json_is_strict():
    from promptlift.files import json_text

    assert json.loads(json_text({"a": float("nan"), "b": [float("inf"), 1.5]})) == {"a": None, "b": [None, 1.5]}


def test_eval_applies_prompt_rewrites_and_scores_the_users_prompt(tmp_path, tiny_pipeline_dirs, tiny_bundle_dir):
    plain, lifted = tmp_path / "plain", tmp_path / "keywords"
    assert _eval(tiny_pipeline_dirs["sd1"], plain, tiny_bundle_dir).exit_code == 0
    result = _eval(tiny_pipeline_dirs["sd1"], lifted, tiny_bundle_dir, "--lift", "keywords")
    assert result.exit_code == 0, result.output
    a, b = ([json.loads(x) for x in (run / "scores.jsonl").read_text().splitlines()] for run in (plain, lifted))
    assert [r["prompt"] for r in a] == [r["prompt"] for r in b]  # matched and judged on the user's prompt
    assert all(r["prompt_used"] == f"{r['prompt']}, highly detailed, sharp focus, soft lighting" for r in b)
    assert "prompt_used" not in a[0]
    changed = [not np.array_equal(np.asarray(Image.open(plain / x["image"])), np.asarray(Image.open(lifted / y["image"])))
               for x, y in zip(a, b)]
    assert all(changed), "the rewritten prompt reached the pipeline"


def test_compare_runs(tmp_path, tiny_pipeline_dirs, tiny_bundle_dir):
    a, b = tmp_path / "a", tmp_path / "b"
    assert _eval(tiny_pipeline_dirs["sd1"], a, tiny_bundle_dir).exit_code == 0
    assert _eval(tiny_pipeline_dirs["sd2"], b, tiny_bundle_dir).exit_code == 0
    same = run("compare", a, a, "--judge", "world-clip", "--output", tmp_path / "same")
    assert same.exit_code == 0, same.output
    result = json.loads((tmp_path / "same" / "compare.json").read_text())
    assert result["win_rate"] == 0.5 and result["ties"] == result["n"] == 6
    diff = run("compare", a, b, "--judge", "world-clip", "--output", tmp_path / "ab")
    assert diff.exit_code == 0, diff.output
    result = json.loads((tmp_path / "ab" / "compare.json").read_text())
    assert 0 <= result["ci95"][0] <= result["win_rate"] <= result["ci95"][1] <= 1 and result["n"] == 6
    assert (tmp_path / "ab" / "compare.html").read_text().count("<img") == 12
    bad = run("compare", a, tmp_path / "nothing")
    assert bad.exit_code != 0 and "is not an eval run folder" in bad.output


def test_missing_reward_weights_stop_before_generation(tmp_path, tiny_pipeline_dirs):
    result = run("eval", "--model", tiny_pipeline_dirs["sd1"], "--prompts", "world-literal", "--rewards", "laion-aesthetic",
                 "--reward_option", f"laion-aesthetic.weights={tmp_path / 'none.pth'}", "--output_dir", tmp_path / "r")
    assert result.exit_code != 0 and "missing" in result.output and "none.pth" in result.output
    assert not (tmp_path / "r" / "images").exists()


def test_rewards_are_given_repeated_or_separated_by_commas():
    config = EvalConfig(rewards=["world-aesthetic,world-clip", "world-vqa"], system=["base="], judge="world-vqa")
    assert config.rewards == ["world-aesthetic", "world-clip", "world-vqa"]


@needs_bench
def test_export_layouts(tmp_path, tiny_pipeline_dirs, tiny_bundle_dir):
    out = tmp_path / "run"
    result = run("eval", "--model", tiny_pipeline_dirs["sd1"], "--prompts", "geneval", "--prompts_path",
                 BENCH / "geneval_evaluation_metadata.jsonl", "--num_prompts", 2, "--seeds", 2, "--rewards", "world-clip",
                 "--reward_option", f"world-clip.bundle_dir={tiny_bundle_dir}", "--num_inference_steps", 1,
                 "--output_dir", out)
    assert result.exit_code == 0, result.output
    assert run("export", "run", out, "--format", "geneval", "--output_dir", tmp_path / "g").exit_code == 0
    meta = json.loads((tmp_path / "g" / "00001" / "metadata.jsonl").read_text())
    assert meta["prompt"] == "a photo of a cow" and (tmp_path / "g" / "00001" / "samples" / "0001.png").is_file()
    assert run("export", "run", out, "--format", "t2i-compbench", "--output_dir", tmp_path / "t").exit_code == 0
    assert sorted(p.name for p in (tmp_path / "t" / "samples").iterdir())[0] == "a photo of a bench_000000.png"


def test_distinct_n_and_pairwise_distance():
    import torch

    from promptlift.evaluation.diversity import distinct_n, pairwise_distance

    same = [["two red boats, sunset", "two red boats, sunset"]]
    apart = [["two red boats, sunset", "soft lighting, highly detailed"]]
    assert distinct_n(same, 1) == 0.5 and distinct_n(apart, 1) == 1.0
    assert distinct_n(same, 2) == 0.5 and distinct_n([["a"]], 2) == 0.0
    with pytest.raises(ValueError, match="`n` must be >= 1"):
        distinct_n(same, 0)
    table = {"x": torch.tensor([1.0, 0.0]), "y": torch.tensor([0.0, 1.0]), "z": torch.tensor([2.0, 0.0])}
    embed = lambda texts: torch.stack([table[t] for t in texts])  # noqa: E731
    assert pairwise_distance([["x", "z"]], embed) == pytest.approx(0.0, abs=1e-6)
    assert pairwise_distance([["x", "y"], ["x", "y", "z"]], embed) == pytest.approx((1.0 + 2 / 3) / 2)


def test_system_table_pairs_systems_on_shared_prompts_and_seeds(tmp_path):
    from promptlift.evaluation.systems import format_system_table, system_table

    def write(name, rows):
        (tmp_path / name).mkdir()
        (tmp_path / name / "scores.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        return tmp_path / name

    def row(i, seed, score, right):
        sem = {"setting": True, "kind": right, "color": True, "count": True}
        return {"id": f"p{i}", "seed": seed, "scores": {"judge": score}, "semantic": sem}

    base = write("base", [row(i, s, 1.0, False) for i in range(4) for s in range(2)])
    better = write("better", [row(i, s, 2.0, True) for i in range(4) for s in range(2)] + [row(9, 0, 0.0, False)])
    table = system_table({"base": base, "better": better}, "base", "judge")
    assert table["better"]["n"] == 8, "the row without a base pair is left out"
    assert table["better"]["vs_baseline"]["win_rate"] == 1.0
    assert table["better"]["semantic"]["kind"] == 1.0 and table["base"]["semantic"]["all"] == 0.0
    assert table["better"]["semantic_all_change"]["mean"] == 1.0
    assert "vs_baseline" not in table["base"]
    assert "100.0 [100.0-100.0]" in format_system_table(table, "base")
    with pytest.raises(ValueError, match="shares no"):
        system_table({"base": base, "other": write("other", [row(7, 0, 1.0, True)])}, "base", "judge")


def test_a_prompts_file_that_is_not_utf8_is_named_with_its_line(tmp_path):
    from promptlift.data.prompt_sets import load_prompt_set

    path = tmp_path / "p.jsonl"
    path.write_bytes(b'{"prompt": "a red ball"}\n{"prompt": "caf\xe9"}\n')
    with pytest.raises(ValueError, match=r"p.jsonl:2: not UTF-8 text"):
        load_prompt_set(str(path))


def test_eval_compares_systems_on_every_prompt_set(tmp_path, tiny_pipeline_dirs, tiny_bundle_dir):
    """`eval --system`: each system an eval run of each set (same prompts and seeds), one table per set against the
    first system, written with the run record; a second call reads the finished runs back."""
    out = tmp_path / "systems"
    args = ("eval", "--model", tiny_pipeline_dirs["sd1"], "--prompts", "world-literal,world-narrative-val", "--num_prompts", 2,
            "--rewards", "world-attributes", "--reward_option", f"world-attributes.bundle_dir={tiny_bundle_dir}",
            "--judge_bundle", tiny_bundle_dir, "--num_inference_steps", 2, "--output_dir", out,
            "--system", "base=", "--system", "kw=keywords,keywords.keywords=sharp focus", "--title", "tiny")
    run(*args)
    record = json.loads((out / "systems.json").read_text())
    assert record["title"] == "tiny" and record["baseline"] == "base" and record["judge"] == "world-attributes"
    assert record["systems"] == {"base": {"lift": [], "lift_option": []},
                                 "kw": {"lift": ["keywords"], "lift_option": ["keywords.keywords=sharp focus"]}}
    assert set(record["sets"]) == {"world-literal", "world-narrative-val"} and record["run"]["command"]
    for name in record["sets"]:
        rows = [json.loads(line) for line in (out / name / "kw" / "scores.jsonl").read_text().splitlines()]
        assert len(rows) == 2 and all(r["prompt_used"].endswith(", sharp focus") for r in rows)
        assert set(record["sets"][name]["kw"]["semantic"]) == {"setting", "kind", "color", "count", "all"}
        assert "vs_baseline" in record["sets"][name]["kw"] and "vs_baseline" not in record["sets"][name]["base"]
    images = sorted((out / "world-literal" / "base" / "images").iterdir())
    made = [p.stat().st_mtime_ns for p in images]
    run(*args)  # finished runs are read back, no image made again
    assert [p.stat().st_mtime_ns for p in images] == made
    assert json.loads((out / "systems.json").read_text())["sets"] == record["sets"]
    refused = run(*args, "--lift", "keywords")
    assert refused.exit_code != 0 and "name each system's lifts in it" in refused.output, refused.output


def test_a_system_spec_names_lifts_options_and_the_whole_stack():
    from promptlift.evaluation.systems import parse_system
    from promptlift.methods import bundle_lift
    from promptlift.pipeline.stack import LIFTED_OPTIONS, LIFTED_STACK

    assert parse_system("base=") == ("base", [], [])
    name, lifts, options = parse_system("mix=textcraftor=runs/a:0.5,runs/b:0.5,textcraftor.alpha=0.5")
    assert lifts == ["textcraftor=runs/a:0.5,runs/b:0.5"] and options == ["textcraftor.alpha=0.5"]
    name, lifts, options = parse_system("stack=lifted,sur-adapter=runs/sur/best,textcraftor.alpha=0.5")
    assert lifts == [*LIFTED_STACK[:2], "sur-adapter=runs/sur/best", LIFTED_STACK[3]]
    assert options[-1] == "textcraftor.alpha=0.5" and set(LIFTED_OPTIONS) - {"textcraftor.alpha=1.0"} <= set(options)
    folder = str(bundle_lift("textcraftor"))  # a lift folder after another lift is a lift of its own
    assert parse_system(f"two=keywords,{folder}")[1] == ["keywords", folder]
    with pytest.raises(ValueError, match="unknown lift 'nope'"):
        parse_system("x=nope")
    with pytest.raises(ValueError, match="must be NAME=LIFT"):
        parse_system("stack")


def test_world_sets_draw_other_scenes_by_subset():
    from promptlift.world.dataset import iter_prompt_set

    records = load_prompt_set("world-narrative-val", subset="seed-3", num_prompts=3)
    assert [r["prompt"] for r in records] == [x["prompt"] for x in iter_prompt_set("narrative-val", 3, seed=3)]
    assert records != load_prompt_set("world-narrative-val", num_prompts=3)
    with pytest.raises(ValueError, match="must be seed-N"):
        load_prompt_set("world-narrative-val", subset="three")
