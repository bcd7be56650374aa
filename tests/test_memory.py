"""`promptlift memory`: the memory model reproduces every measured step, and asks about any SD 1.x/2.x/SDXL model."""

import pytest

from promptlift.memory import MemoryConfig, estimate, format_estimate
from promptlift.memory.model import GiB, load_models, read_measured
from helpers import run_cli

MODELS = load_models()
METHODS = {"quality-tuning": ("quality-tuning", {}), "quality-tuning-lora": ("quality-tuning", {"use_lora": True}),
           "sur-adapter": ("sur-adapter", {}), "refiner": ("refiner", {}),
           "textcraftor-k1": ("textcraftor", {"grad_steps": 1}), "textcraftor-k5": ("textcraftor", {"grad_steps": 5})}
POINTS = [r for r in read_measured() if r["ok"] and r["method"] in METHODS]


def test_there_are_measured_points_of_every_architecture_and_method():
    assert {r["arch"] for r in POINTS} == {"sd15", "sd21", "sdxl"} and {r["method"] for r in POINTS} == set(METHODS)


@pytest.mark.parametrize("point", POINTS, ids=[f"{r['arch']}-{r['method']}-{r['resolution']}" for r in POINTS])
def test_the_projection_is_within_15_percent_of_every_measured_step(point):
    method, options = METHODS[point["method"]]
    cfg = MemoryConfig(model=point["arch"], method=method, resolution=point["resolution"], train_batch_size=point["batch"],
                       mixed_precision=point["mixed_precision"], optimizer=point["optimizer"], **options)
    projected = estimate(cfg, MODELS)["peak_gib"] * GiB
    measured = point["held"] + point["peak"]  # what the process held before the step + the step's own peak
    assert abs(projected - measured) / measured <= 0.15, (projected / GiB, measured / GiB)


def test_any_model_of_a_family_with_what_it_extrapolates(tiny_pipeline_dirs, tmp_path):
    result = estimate(MemoryConfig(model="sdxl", method="textcraftor", grad_steps=8, resolution=1024, train_batch_size=2,
                                   total_batch_size=32, gpu=[24, 80]), MODELS)
    assert result["architecture"] == "sdxl" and result["max_batch"][80] >= result["max_batch"][24]
    assert result["gradient_accumulation"][24] is None or result["gradient_accumulation"][24] >= 1
    text = " ".join(result["extrapolated"])
    assert "beyond the largest measured (384 px)" in text and "K = 8" in text and "bf16" in text
    tiny = estimate(MemoryConfig(model=str(tiny_pipeline_dirs["sdxl"]), method="sur-adapter"), MODELS)
    assert tiny["architecture"] == "sdxl" and "the UNet differs from the measured sdxl" in " ".join(tiny["extrapolated"])
    assert "projected peak" in format_estimate(tiny)
    (tmp_path / "m.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match="is a single file; pass --model_config"):
        estimate(MemoryConfig(model=str(tmp_path / "m.safetensors")), MODELS)
    with pytest.raises(ValueError, match="`gradient_checkpointing` off is not measured"):
        MemoryConfig(gradient_checkpointing=False)
    result = run_cli("memory", "--model", "sd15", "--method", "quality-tuning", "--use_lora", "--resolution", 512,
                     "--train_batch_size", 4, "--mixed_precision", "bf16", "--optimizer", "adamw_8bit", "--gpu", 24,
                     "--total_batch_size", 64)
    assert result.exit_code == 0 and "quality-tuning-lora on sd15" in result.output and "24 GiB card" in result.output
