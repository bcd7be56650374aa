"""The paper configs run end to end, 2 steps, on the real architectures (SD 1.5, SD 2.1, SDXL built from their
published configs with random weights by benchmarks/real_size.py), at 64 px. Slow: minutes and ~20 GB of RAM each."""

import os
import sys
from pathlib import Path

import pytest

from promptlift.config import load_config
from promptlift.methods import METHODS

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from real_size import ARCHS, build_data, build_pipeline  # noqa: E402

# what the test swaps in a paper config: the random pipeline, world data at 64 px, 2 steps, an evaluation of one prompt
# and one denoising step judged in the world, batch 1, fp32 with 8-bit AdamW (fp16 needs a GPU, bf16 is slow on most
# CPUs); the columns of the world's data
CASES = {
    "quality-tuning": dict(caption_column=["complex"], resolution=64),
    "sur-adapter": dict(simple_column="narrative"),
    "refiner": dict(coarse_column="literal", fine_column="complex", d_model=64, num_decoder_layers=1, diffusion_batch_size=1),
    "textcraftor": dict(prompt_column="literal", reward=["world-aesthetic-reward:1", "world-clip:0.05"], resolution=64,
                        num_inference_steps=10, switch_step=0),
}


def _config_path(method: str, arch: str) -> Path:
    if method == "textcraftor":  # one paper config; its SD 1.5 model swapped for each architecture
        return ROOT / "configs" / "textcraftor-paper.yaml"
    return ROOT / "configs" / "paper" / f"{method}-{arch}.yaml"


@pytest.fixture(scope="module")
def real_size_root(tmp_path_factory):
    return tmp_path_factory.mktemp("real-size")


@pytest.mark.slow
@pytest.mark.parametrize("method", list(CASES))
@pytest.mark.parametrize("arch", ARCHS)
def test_the_paper_configs_run_two_steps_on_the_real_architectures(arch, method, real_size_root, tmp_path):
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    if (arch, method) == ("sdxl", "quality-tuning") and ram < 40:
        pytest.skip(f"all 2.6B SDXL UNet weights in fp32 with their gradients and 8-bit moments need ~30 GiB; {ram:.0f} here")
    model = build_pipeline(arch, real_size_root / arch / "model")
    data = build_data(64, real_size_root)
    spec = METHODS[method]
    data_key = {"quality-tuning": "train_data_dir", "sur-adapter": "train_data_dir", "refiner": "train_data",
                "textcraftor": "prompts"}[method]
    overrides = dict(pretrained_model_name_or_path=str(model), output_dir=tmp_path, max_train_steps=2,
                     train_batch_size=1, gradient_accumulation_steps=1,
                     checkpointing_steps=2, eval_steps=2, num_eval_prompts=1, eval_inference_steps=1, eval_resolution=64,
                     eval_prompts="world-literal", eval_judge="world-aesthetic", mixed_precision="no",
                     optimizer="adamw_8bit",
                     **{data_key: str(data)}, **CASES[method])
    cfg = load_config(spec.config, _config_path(method, arch), overrides)
    out = spec.train(cfg)
    assert (out / "final").is_dir() or (out / "best").is_dir()
    assert (out / "checkpoints" / "checkpoint-2").is_dir()
