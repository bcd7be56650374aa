"""The bundle recipe end to end at toy sizes: every part trains, resumes, and the result loads without promptlift."""

import json

import pytest
import torch

from promptlift.judges import load_judge
from promptlift.recipes.bundle import BundleConfig, train_bundle
from promptlift.judges import JUDGE_CLASSES


@pytest.mark.parametrize("name", list(JUDGE_CLASSES))
def test_judges_take_any_size_and_are_differentiable(tmp_path, name):
    torch.manual_seed(0)
    judge = JUDGE_CLASSES[name]().eval()
    images = torch.rand(3, 3, 96, 96, requires_grad=True)
    out = judge(images)
    total = sum(v.sum() for v in out.values()) if isinstance(out, dict) else out.sum()
    total.backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    judge.save_pretrained(tmp_path / name)
    again = JUDGE_CLASSES[name].from_pretrained(tmp_path / name).eval()
    with torch.no_grad():
        a, b = judge(images), again(images)
    for x, y in zip(a.values() if isinstance(a, dict) else [a], b.values() if isinstance(b, dict) else [b]):
        torch.testing.assert_close(x, y)
    with pytest.raises(ValueError, match=r"must be \(B, 3, H, W\)"):
        judge(torch.rand(3, 64, 64))


def toy_config(tmp_path, **kw):
    base = dict(output_dir=tmp_path / "bundle", work_dir=tmp_path / "work", eval_size=8, judge_steps=2,
                judge_batch_size=4, vae_steps=2, vae_batch_size=2, vae_eval_steps=1, clip_steps=2, clip_batch_size=4,
                aesthetic_steps=2, aesthetic_batch_size=2, unet_steps=2, unet_batch_size=2, unet_eval_steps=2,
                unet_eval_prompts=2, measure_prompts=2, measure_seeds=1, measure_guidance_scales=[3.0],
                measure_timing_batch=2, measure_inference_steps=2)
    return BundleConfig(**{**base, **kw})


def test_unet_refuses_to_start_before_the_vae_gate(tmp_path):
    cfg = toy_config(tmp_path, parts=["judge-attributes", "vae", "tokenizer", "clip", "unet"])
    with pytest.raises(RuntimeError, match="has not passed its gate"):
        train_bundle(cfg)


def test_recipe_end_to_end_and_plain_diffusers_loads_it(tmp_path):
    from diffusers import StableDiffusionPipeline

    cfg = toy_config(tmp_path, vae_gate=0.0)
    results = train_bundle(cfg)
    assert set(results) == set(cfg.parts)
    card = json.loads((tmp_path / "bundle" / "card.json").read_text())
    assert card["vae"]["gate_passed"] and "round_trip" in card["vae"] and card["assemble"]["bundle_size_mb"] > 0
    assert set(card["measure"]["prompt_sets"]) == {"complex", "literal", "narrative-train", "narrative-val"}
    assert card["measure"]["seconds_per_image_batch1"] > 0
    # the sets were scored by the evaluation harness: real run folders, and the numbers are theirs
    complex_run = tmp_path / "work" / "measure" / "complex"
    summary = json.loads((complex_run / "summary.json").read_text())
    assert card["measure"]["prompt_sets"]["complex"]["all"] == round(summary["semantic_accuracy"]["all"], 4)
    assert (complex_run / "report.html").is_file() and summary["n"] == 2
    assert json.loads((tmp_path / "bundle" / "pipeline" / "promptlift.json").read_text())["guidance_scale"] == 3.0

    pipe = StableDiffusionPipeline.from_pretrained(tmp_path / "bundle" / "pipeline")  # no promptlift code
    image = pipe("a trio of crimson sailboats", num_inference_steps=2, output_type="np").images[0]
    assert image.shape == (64, 64, 3)
    assert pipe.tokenizer.unk_token not in pipe.tokenizer.tokenize("a trio of crimson sailboats as the sun goes down")
    for name in ("attributes", "aesthetic-reward", "aesthetic"):
        load_judge(tmp_path / "bundle", name)

    # a running UNet's EMA weights can be exported: they are the EMA shadow of its latest checkpoint
    snap = train_bundle(toy_config(tmp_path, parts=["unet-snapshot"], vae_gate=0.0))
    assert snap["unet-snapshot"]["snapshot_of_step"] == 2
    from diffusers import UNet2DConditionModel

    shadow = torch.load(tmp_path / "work" / "unet" / "checkpoints" / "checkpoint-2" / "custom_checkpoint_0.pkl",
                        weights_only=False)["shadow_params"]
    exported = UNet2DConditionModel.from_pretrained(tmp_path / "bundle" / "pipeline" / "unet")
    assert all(torch.equal(a, b) for a, b in zip(exported.parameters(), shadow))

    # every part resumes: more VAE steps continue from its last checkpoint
    more = train_bundle(toy_config(tmp_path, parts=["vae"], vae_steps=3, vae_gate=0.0))
    assert more["vae"]["steps"] == 3
    log = [json.loads(x) for x in (tmp_path / "work" / "vae" / "logs.jsonl").read_text().splitlines()]
    assert [x["step"] for x in log if "eval" in x] == [1, 2, 3]


def test_unknown_part_is_named():
    with pytest.raises(ValueError, match="unknown bundle part.*'vea'.*valid parts"):
        BundleConfig(parts=["vea"])
