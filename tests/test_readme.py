"""The README's own-model commands, then its Python block, run as written (on the stand-in single file they make),
offline."""

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_block(first_line: str, language: str = "bash") -> str:
    """The `language` block of README.md whose first line is `first_line`."""
    for block in re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S):
        if block.startswith(first_line):
            return block
    raise AssertionError(f"README has no bash block starting {first_line!r}")


def test_the_own_model_commands_run_as_written(tmp_path):
    block = readme_block("# a stand-in for your checkpoint")
    script = block.replace(".venv/bin/", str(Path(sys.executable).parent) + "/")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(["bash", "-e", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for made in ("my-model.safetensors", "runs/my-tc/final/lift_config.json", "runs/my-tc/final/README.md",
                 "my-tc-lora.safetensors", "my-tc-lora.md", "my-model-tc.safetensors", "my-model-tc.md"):
        assert (tmp_path / made).is_file(), made
    assert len(list((tmp_path / "outputs" / "my-boats").glob("*.png"))) == 1
    python = readme_block("import promptlift\nfrom diffusers import StableDiffusionPipeline", "python")
    python = python.replace("num_inference_steps=25", "num_inference_steps=2")  # the same calls, quicker
    check = "\nassert base.size == image.size and image.tobytes() != base.tobytes() and not promptlift.get_lifts(pipe)\n"
    result = subprocess.run([sys.executable, "-c", python + check], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
