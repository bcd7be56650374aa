"""Quality-tuning: trainable weights change, frozen ones don't, outputs load in diffusers and via the lift, exact resume."""

import json

import pytest
import torch
from click.testing import CliRunner
from diffusers import UNet2DConditionModel

from promptlift.cli import cli
from promptlift.pipeline import load_lifts, load_pipeline
from helpers import run_cli


@pytest.fixture
def curated(world_set):
    """The curated set the trainer reads: a small world imagefolder."""
    return world_set


def run_qt(model, data, out, bundle, *extra):
    args = ["train", "quality-tuning", "--pretrained_model_name_or_path", model,
            "--eval_prompts", "literal", "--train_data_dir", data,
            "--output_dir", out, "--caption_column", "complex", "--caption_column", "literal", "--max_train_steps", 4,
            "--train_batch_size", 2, "--gradient_accumulation_steps", 2, "--eval_steps", 2, "--checkpointing_steps", 2,
            "--num_eval_prompts", 2, "--eval_inference_steps", 2, "--eval_judge", "world-aesthetic",
            "--reward_option", f"world-aesthetic.bundle_dir={bundle}", "--judge_bundle", bundle, "--lr_warmup_steps", 1,
            "--learning_rate", 1e-3, *extra]
    return run_cli(*args)


def test_full_finetune_changes_only_the_unet_and_loads_everywhere(tmp_path, tiny_pipeline_dirs, tiny_bundle_dir, curated):
    model = tiny_pipeline_dirs["sd1"]
    result = run_qt(model, curated, tmp_path / "qt", tiny_bundle_dir)
    assert result.exit_code == 0, result.output
    base = load_pipeline(model)
    tuned_unet = UNet2DConditionModel.from_pretrained(tmp_path / "qt" / "best" / "unet")  # plain diffusers
    changed = [not torch.equal(a, b) for a, b in zip(base.unet.state_dict().values(), tuned_unet.state_dict().values())]
    assert sum(changed) / len(changed) > 0.9, "nearly every UNet tensor is trained"
    lifted = load_pipeline(model, lifts=load_lifts([f"quality-tuning={tmp_path / 'qt' / 'best'}"]))
    # `scale` multiplies the tuned weights' change: half-way in weight space
    half = load_pipeline(model, lifts=load_lifts([f"quality-tuning={tmp_path / 'qt' / 'best'}"], ["quality-tuning.scale=0.5"]))
    for h, a, b in zip(half.unet.state_dict().values(), base.unet.state_dict().values(), tuned_unet.state_dict().values()):
        assert torch.allclose(h, (a + b) / 2 if a.is_floating_point() else a, atol=1e-6)
    for a, b in zip(lifted.unet.state_dict().values(), tuned_unet.state_dict().values()):
        assert torch.equal(a, b)
    for name in ("vae", "text_encoder"):  # frozen parts are those of the base
        for a, b in zip(getattr(lifted, name).state_dict().values(), getattr(base, name).state_dict().values()):
            assert torch.equal(a, b)
    assert (tmp_path / "qt" / "best" / "eval.json").is_file() and (tmp_path / "qt" / "eval_history.json").is_file()


def test_without_the_end_check_the_last_weights_are_final(tmp_path, tiny_pipeline_dirs, tiny_bundle_dir, curated):
    """`--no-eval_at_end` with `--eval_steps 0`: no held-out check runs, so no best/; final/ holds the last weights
    with their lift_config.json, and loads as the lift."""
    model = tiny_pipeline_dirs["sd1"]
    result = run_qt(model, curated, tmp_path / "qt", tiny_bundle_dir, "--use_lora", "--eval_steps", 0,
                    "--no-eval_at_end")
    assert result.exit_code == 0, result.output
    out = tmp_path / "qt"
    assert not (out / "best").exists() and json.loads((out / "eval_history.json").read_text()) == []
    assert json.loads((out / "final" / "lift_config.json").read_text())["lift_type"] == "quality-tuning"
    load_pipeline(model, lifts=load_lifts([f"quality-tuning={out / 'final'}"]))


def test_lora_on_sdxl_trains_only_the_adapter(tmp_path, tiny_pipeline_dirs, tiny_bundle_dir, curated):
    model = tiny_pipeline_dirs["sdxl"]
    result = run_qt(model, curated, tmp_path / "qt", tiny_bundle_dir, "--use_lora", "--lora_rank", 4)
    assert result.exit_code == 0, result.output
    weights = tmp_path / "qt" / "best" / "pytorch_lora_weights.safetensors"
    assert weights.is_file()
    from safetensors.torch import load_file

    state = load_file(str(weights))
    assert state and all("lora" in k for k in state) and any(v.abs().sum() > 0 for v in state.values())
    base = load_pipeline(model)
    lifted = load_pipeline(model, lifts=load_lifts([f"quality-tuning={tmp_path / 'qt' / 'best'}"], ["quality-tuning.fuse=true"]))
    x, t, c = torch.randn(1, 4, 16, 16), torch.tensor([10]), torch.randn(1, 77, 64)
    added = {"text_embeds": torch.randn(1, 32), "time_ids": torch.tensor([[32.0, 32, 0, 0, 32, 32]])}
    with torch.no_grad():
        a = base.unet(x, t, c, added_cond_kwargs=added).sample
        b = lifted.unet(x, t, c, added_cond_kwargs=added).sample
    assert not torch.allclose(a, b)
    # the lift's options reach the LoRA: scale 0 changes nothing; unfused (the default, as diffusers leaves LoRAs), the
    # LoRA layers stay and give the fused output
    spec = [f"quality-tuning={tmp_path / 'qt' / 'best'}"]
    zero = load_pipeline(model, lifts=load_lifts(spec, ["quality-tuning.scale=0", "quality-tuning.fuse=true"]))
    unfused = load_pipeline(model, lifts=load_lifts(spec))
    with torch.no_grad():
        assert torch.allclose(zero.unet(x, t, c, added_cond_kwargs=added).sample, a, atol=1e-5)
        assert torch.allclose(unfused.unet(x, t, c, added_cond_kwargs=added).sample, b, atol=1e-4)
    assert any("lora" in n for n, _ in unfused.unet.named_parameters())
    # fused, no LoRA layer is left to call: the UNet is the plain diffusers module with merged weights
    assert not any("lora" in type(m).__module__ for m in lifted.unet.modules())
    assert set(lifted.unet.state_dict()) == set(base.unet.state_dict())


def test_resume_after_a_crash_gives_the_same_weights(tmp_path, tiny_pipeline_dirs, tiny_bundle_dir, curated, monkeypatch):
    import promptlift.methods.quality_tuning.trainer as T

    model = tiny_pipeline_dirs["sd1"]
    extra = ("--eval_steps", 100)  # no evaluation in between: only the weights at the end matter here
    assert run_qt(model, curated, tmp_path / "a", tiny_bundle_dir, *extra).exit_code == 0
    calls = {"n": 0}
    original = T.diffusion_loss

    def crash_on_sixth(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 6:  # micro-batch 6 = step 3, after checkpoint-2
            raise RuntimeError("killed")
        return original(*args, **kwargs)

    monkeypatch.setattr(T, "diffusion_loss", crash_on_sixth)
    crashed = run_qt(model, curated, tmp_path / "b", tiny_bundle_dir, *extra)  # the CLI reports it in one line
    assert crashed.exit_code == 1 and "RuntimeError: killed" in crashed.output
    monkeypatch.setattr(T, "diffusion_loss", original)
    assert run_qt(model, curated, tmp_path / "b", tiny_bundle_dir, *extra, "--resume_from_checkpoint", "latest").exit_code == 0
    a = UNet2DConditionModel.from_pretrained(tmp_path / "a" / "best" / "unet").state_dict()
    b = UNet2DConditionModel.from_pretrained(tmp_path / "b" / "best" / "unet").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_gradient_checkpointing_recomputes_and_trains_the_same_weights(tmp_path, tiny_pipeline_dirs, tiny_bundle_dir,
                                                                       curated, monkeypatch):
    from safetensors.torch import load_file

    calls = []
    checkpoint = torch.utils.checkpoint.checkpoint
    monkeypatch.setattr(torch.utils.checkpoint, "checkpoint", lambda *a, **k: calls.append(1) or checkpoint(*a, **k))
    weights = {}
    for flag in ("--no-gradient_checkpointing", "--gradient_checkpointing"):
        calls.clear()
        result = run_qt(tiny_pipeline_dirs["sd1"], curated, tmp_path / flag, tiny_bundle_dir, "--use_lora", flag)
        assert result.exit_code == 0, result.output
        assert bool(calls) == (flag == "--gradient_checkpointing")
        weights[flag] = load_file(str(tmp_path / flag / "checkpoints" / "checkpoint-4" / "model.safetensors"))
    a, b = weights.values()
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_bad_training_data_is_named(tmp_path):
    result = CliRunner().invoke(cli, ["train", "quality-tuning", "--train_data_dir", str(tmp_path)])
    assert result.exit_code != 0 and "is not an imagefolder with metadata.jsonl" in result.output


def test_max_train_samples_takes_the_best_ranked(tmp_path, tiny_pipeline_dirs, curated):
    import json
    import shutil

    from promptlift.methods.quality_tuning.config import QualityTuningConfig
    from promptlift.methods.quality_tuning.trainer import build_cache

    data = tmp_path / "ranked"
    shutil.copytree(curated, data)
    rows = [json.loads(x) for x in (data / "metadata.jsonl").read_text().splitlines()]
    ranks = [4, 1, 6, 2, 5, 3]  # as `promptlift curate` records them
    for row, rank in zip(rows, ranks):
        row["curation"] = {"rank": f"rank {rank}"}
        row["complex"] = f"image {rank}"
    (data / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    pipe = load_pipeline(tiny_pipeline_dirs["sd1"])
    cfg = QualityTuningConfig(train_data_dir=data, caption_column=["complex"], max_train_samples=2)
    cache = build_cache(pipe, cfg)
    from promptlift.pipeline import encode_prompts

    expected = [encode_prompts(pipe, [f"image {r}"], do_classifier_free_guidance=False).prompt_embeds[0] for r in (1, 2)]
    assert len(cache) == 2
    for entry, embeds in zip(cache, expected):
        torch.testing.assert_close(entry["complex"][0], embeds)
    with pytest.raises(ValueError, match="max_train_samples"):
        QualityTuningConfig(train_data_dir=data, max_train_samples=0)


def test_aspect_ratio_buckets_keep_every_batch_in_one_bucket_and_cover_each_epoch():
    from PIL import Image

    from promptlift.data.buckets import bucket_batch, bucket_size, fit_to_bucket

    assert bucket_size(1024, 1024, 1024) == (1024, 1024) and bucket_size(1920, 1080, 1024) == (1344, 768)
    assert bucket_size(256, 128, 128) == (192, 64)
    image, (top, left) = fit_to_bucket(Image.new("RGB", (300, 100)), (192, 64))
    assert image.size == (192, 64) and (top, left) == (0, 0)
    image, (top, left) = fit_to_bucket(Image.new("RGB", (100, 300)), (64, 64))
    assert image.size == (64, 64) and top == 64 and left == 0
    buckets = [(192, 64)] * 5 + [(128, 128)] * 4
    per_epoch = 3 + 2  # ceil(5 / 2) + ceil(4 / 2)
    epoch = [bucket_batch(i, buckets, 2, seed=1) for i in range(per_epoch)]
    assert all(len({buckets[k] for k in b}) == 1 for b in epoch)
    assert sorted(k for b in epoch for k in b) == list(range(9))
    assert [bucket_batch(i, buckets, 2, seed=1) for i in range(per_epoch)] == epoch  # a function of i: exact resume
    assert [bucket_batch(per_epoch + i, buckets, 2, seed=1) for i in range(per_epoch)] != epoch  # reshuffled


@pytest.mark.parametrize("arch", ["sd1", "sdxl"])
def test_mixed_sizes_train_on_buckets_and_are_refused_without(tmp_path, tiny_pipeline_dirs, tiny_bundle_dir, world_set,
                                                              arch):
    import json
    import shutil

    from PIL import Image

    data = tmp_path / "mixed"
    shutil.copytree(world_set, data)
    rows = [json.loads(line) for line in (data / "metadata.jsonl").read_text().splitlines()]
    for row in rows[::2]:  # every other image 2:1 landscape, the rest stay square
        path = data / row["file_name"]
        Image.open(path).convert("RGB").resize((256, 128)).save(path)
    model = tiny_pipeline_dirs[arch]
    refused = run_qt(model, data, tmp_path / "a", tiny_bundle_dir)
    assert refused.exit_code != 0 and "--resolution" in refused.output
    result = run_qt(model, data, tmp_path / "b", tiny_bundle_dir, "--resolution", 128, "--use_lora", "--lora_rank", 2)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "b" / "eval_history.json").is_file()


def test_the_held_out_check_draws_at_eval_resolution(tiny_pipeline_dirs, tiny_bundle_dir):
    """A full-size model's check would draw at its 512-1024 px default: `eval_resolution` sets the side."""
    from promptlift.methods.heldout import HeldOutEvaluator

    pipe = load_pipeline(tiny_pipeline_dirs["sd1"])
    evaluator = HeldOutEvaluator(pipe, "world-literal", 2, "world-aesthetic",
                                 [f"world-aesthetic.bundle_dir={tiny_bundle_dir}"], tiny_bundle_dir,
                                 num_inference_steps=1, resolution=48)
    assert evaluator.images([]).shape[-2:] == (48, 48)
    assert 0 <= evaluator()["win_rate_vs_base"] <= 1


def test_the_held_out_check_batches_its_prompts(tiny_pipeline_dirs, tiny_bundle_dir):
    """`eval_batch_size` bounds the check's memory (a full batch outgrew training's) without changing its images."""
    from promptlift.methods.common import MethodTrainConfig
    from promptlift.methods.heldout import HeldOutEvaluator

    pipe = load_pipeline(tiny_pipeline_dirs["sd1"])
    options = [f"world-aesthetic.bundle_dir={tiny_bundle_dir}"]
    whole, batched = (HeldOutEvaluator(pipe, "world-literal", 3, "world-aesthetic", options, tiny_bundle_dir,
                                       num_inference_steps=2, batch_size=n) for n in (3, 2))
    assert torch.allclose(whole.images([]), batched.images([]), atol=1e-5)
    with pytest.raises(ValueError, match="eval_batch_size"):
        MethodTrainConfig(eval_batch_size=0)
