"""`promptlift generate` end to end, in-process, on each tiny architecture."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from promptlift.cli import cli
from helpers import run_cli


def run(*args):
    result = run_cli(*args)
    return result


def _generate(model, out, *extra):
    return run("generate", "--model", model, "--num_inference_steps", 3, "--output_dir", out, *extra)


def test_generate_writes_pngs_and_sidecars(tmp_path, arch, tiny_dir):
    out = tmp_path / "out"
    result = _generate(tiny_dir, out, "a red ball", "two boats at sunset", "--num_images_per_prompt", 2,
                       "--batch_size", 3, "--seed", 7, "--guidance_scale", 3)
    assert result.exit_code == 0, result.output
    pngs = sorted(out.glob("*.png"))
    assert [p.name for p in pngs] == [
        "000-a-red-ball-seed7.png", "000-a-red-ball-seed8.png",
        "001-two-boats-at-sunset-seed7.png", "001-two-boats-at-sunset-seed8.png",
    ]
    meta = json.loads(pngs[3].with_suffix(".json").read_text())
    assert meta["prompt"] == "two boats at sunset" and meta["seed"] == 8 and meta["model"] == str(tiny_dir)
    assert meta["num_inference_steps"] == 3 and meta["guidance_scale"] == 3.0
    assert (meta["height"], meta["width"]) == Image.open(pngs[3]).size[::-1] == (32, 32)
    assert meta["timings"]["generate_s_per_image"] > 0
    assert not list(out.glob(".*")), "temporary files left behind"


def test_same_seed_same_image_and_batch_independence(tmp_path, arch, tiny_dir):
    assert _generate(tiny_dir, tmp_path / "a", "a red ball", "--num_images_per_prompt", 2).exit_code == 0
    assert _generate(tiny_dir, tmp_path / "b", "a red ball", "--num_images_per_prompt", 2).exit_code == 0
    assert _generate(tiny_dir, tmp_path / "c", "a red ball", "--seed", 1, "--batch_size", 1).exit_code == 0
    a0, a1 = (tmp_path / "a" / f"000-a-red-ball-seed{s}.png" for s in (0, 1))
    assert a0.read_bytes() == (tmp_path / "b" / a0.name).read_bytes()
    assert a1.read_bytes() != a0.read_bytes()
    # image k of a batched run equals a lone run at seed+k (to the last bit of uint8 rounding)
    lone = np.asarray(Image.open(tmp_path / "c" / a1.name), dtype=int)
    assert np.abs(np.asarray(Image.open(a1), dtype=int) - lone).max() <= 1


def test_config_file_and_overrides(tmp_path, tiny_pipeline_dirs):
    cfg = tmp_path / "gen.yaml"
    cfg.write_text(f"model: {tiny_pipeline_dirs['sd1']}\nnum_inference_steps: 2\nseed: 3\n")
    result = run("generate", "--config", cfg, "--seed", 5, "--output_dir", tmp_path / "o", "a box")
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "o" / "000-a-box-seed5.json").read_text())
    assert (meta["num_inference_steps"], meta["seed"]) == (2, 5)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--height", "30", "x"], "`height` must be a positive multiple of 8, got 30"),
        (["--num_inference_steps", "0", "x"], "`num_inference_steps` must be from 1 to 1000, got 0"),
        (["--num_inference_steps", "-3", "x"], "`num_inference_steps` must be from 1 to 1000, got -3"),
        ([], "no prompt given"),
        (["  "], "prompt 0 is empty"),
        (["word " * 40], "would be cut"),
        (["--stepz", "3", "x"], "unknown option '--stepz'; valid options: --batch_size"),
        (["--lift", "nope", "x"], "unknown lift 'nope'"),
    ],
)
def test_bad_input_is_named_and_writes_nothing(tmp_path, tiny_pipeline_dirs, args, message):
    out = tmp_path / "out"
    result = run("generate", "--model", tiny_pipeline_dirs["sd1"], "--output_dir", out, *args)
    assert result.exit_code != 0
    assert message in result.output
    assert not out.exists() or not any(out.iterdir())


def test_output_dir_that_is_a_file(tmp_path, tiny_pipeline_dirs):
    target = tmp_path / "taken"
    target.write_text("keep me")
    result = run("generate", "--model", tiny_pipeline_dirs["sd1"], "--output_dir", target, "x")
    assert result.exit_code != 0 and "is a file, not a folder" in result.output
    assert target.read_text() == "keep me"


def test_long_prompt_truncate_is_recorded(tmp_path, tiny_pipeline_dirs):
    result = _generate(tiny_pipeline_dirs["sd1"], tmp_path / "o", "word " * 40, "--on_long_prompt", "truncate")
    assert result.exit_code == 0, result.output
    (sidecar,) = (tmp_path / "o").glob("*.json")
    cut = json.loads(sidecar.read_text())["truncated"]
    assert cut and ("word " * 40).strip().endswith(cut)


def test_help_lists_commands_and_each_command_has_help():
    top = run("--help")
    assert top.exit_code == 0
    names = ["generate", "lifts", "tiny-pipeline"]
    assert all(name in top.output for name in names)
    for name in names:
        sub = run(name, "--help")
        assert sub.exit_code == 0 and "Usage:" in sub.output
    assert "Denoising steps. [default: 25]" in run("generate", "--help").output.replace("\n", " ").replace("  ", " ")


def test_tiny_pipeline_command_then_generate(tmp_path):
    result = run("tiny-pipeline", "--arch", "sd2", "--output_dir", tmp_path / "m")
    assert result.exit_code == 0, result.output
    assert _generate(tmp_path / "m", tmp_path / "o", "a tree").exit_code == 0
    assert len(list((tmp_path / "o").glob("*.png"))) == 1


def test_guidance_default_comes_from_the_model_folder(tmp_path, tiny_pipeline_dirs):
    import shutil

    from promptlift.generation import SamplingConfig

    model = tmp_path / "model"
    shutil.copytree(tiny_pipeline_dirs["sd1"], model)
    assert SamplingConfig(model=str(model)).guidance_scale == 7.5  # diffusers' default when the folder says nothing
    (model / "promptlift.json").write_text(json.dumps({"guidance_scale": 3.0}))
    assert SamplingConfig(model=str(model)).guidance_scale == 3.0
    assert SamplingConfig(model=str(model), guidance_scale=6.0).guidance_scale == 6.0  # the user's choice wins
    out = tmp_path / "out"
    assert CliRunner().invoke(cli, ["generate", "a red ball", "--model", str(model), "--num_inference_steps", "2",
                                    "--output_dir", str(out)]).exit_code == 0
    assert json.loads(next(out.glob("*.json")).read_text())["guidance_scale"] == 3.0
