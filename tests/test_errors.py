"""Bad input ends in a one-line error naming the input and the fix, never in a traceback (unless --debug)."""

import pytest
from click.testing import CliRunner

from promptlift.cli import cli
from helpers import run_cli


def run(*args):
    return run_cli(*args, catch_exceptions=True)


@pytest.fixture
def broken_inputs(tmp_path):
    (tmp_path / "bad.yaml").write_text("num_inference_steps: [1,\n  seed 3\n")
    (tmp_path / "a-file").write_text("x")
    lora = tmp_path / "lora"
    lora.mkdir()
    (lora / "pytorch_lora_weights.safetensors").write_bytes(b"\x00\x01garbage")
    return tmp_path


@pytest.mark.parametrize("case, extra, message", [
    ("malformed YAML", ["--config", "{root}/bad.yaml"], "is not valid YAML at line"),
    ("device without CUDA", ["--device", "cuda"], "has no CUDA; use --device cpu"),
    ("output_dir below a file", ["--output_dir", "{root}/a-file/out"], "cannot be created"),
    ("huge seed", ["--seed", str(10**23)], "`seed` must be from 0 to 4294967295"),
    ("seed in float notation", ["--seed", "1e23"], "`seed` must be int, got '1e23'"),
    ("huge image count", ["--num_images_per_prompt", "1000000000"], "`num_images_per_prompt` must be from 1 to 10000"),
    ("garbage LoRA", ["--lift", "lora={root}/lora"], "(`promptlift --debug generate ...` shows the traceback)"),
])
def test_generate_bad_input_is_one_line(broken_inputs, tiny_pipeline_dirs, case, extra, message):
    if case == "device without CUDA":
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
    args = [a.format(root=broken_inputs) for a in extra]
    result = run("generate", "a red ball", "--model", tiny_pipeline_dirs["sd1"], "--num_inference_steps", 1,
                 "--output_dir", broken_inputs / "out", *args)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and message in result.output.replace("\n", " ")
    debug = CliRunner().invoke(cli, ["--debug", "generate", "a red ball", "--model", str(tiny_pipeline_dirs["sd1"]),
                                     "--num_inference_steps", "1", "--output_dir", str(broken_inputs / "out"), *args])
    assert debug.exit_code != 0 and debug.exception is not None and not isinstance(debug.exception, SystemExit)


def test_generate_prints_no_loading_bars_or_deprecation_warnings(tmp_path, tiny_pipeline_dirs):
    import subprocess
    import sys

    code = ("from promptlift.cli import main; main(['generate', 'a red ball', '--model', %r, '--num_inference_steps', '1', "
            "'--output_dir', %r])" % (str(tiny_pipeline_dirs["sd1"]), str(tmp_path / "out")))
    done = subprocess.run([sys.executable, "-W", "default", "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    for noise in ("FutureWarning", "Loading pipeline components", "deprecated"):
        assert noise not in done.stderr + done.stdout, done.stderr
