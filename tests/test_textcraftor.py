"""TextCraftor: only the encoder (or LoRA) learns, frozen models hold no gradient, any step count works, resume
is exact, tuned encoders load strictly, and interpolation / hybrid schedule / weight mixes do what they say."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from promptlift.methods.textcraftor.config import TextCraftorConfig
from promptlift.methods.textcraftor.lift import TextCraftorLift, parse_mix
from promptlift.methods.textcraftor.sampling import Conditioning, sample_with_grad
from promptlift.pipeline import call_with_lifts, encode_prompts, load_lifts, load_pipeline
from helpers import run_cli

PROMPTS = ["two red boats at sunset", "a white ball on the beach", "three green trees at night"]


@pytest.fixture(scope="module")
def prompt_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("prompts") / "prompts.txt"
    path.write_text("\n".join(PROMPTS) + "\n")
    return path


def run_tc(model, prompts, out, bundle, *extra):
    args = ["train", "textcraftor", "--pretrained_model_name_or_path", model,
            "--eval_prompts", "literal", "--eval_judge", "world-aesthetic", "--prompts", prompts,
            "--output_dir", out, "--reward", "world-aesthetic-reward:1", "--reward", "world-clip:0.01",
            "--reward_option", f"world-aesthetic-reward.bundle_dir={bundle}",
            "--reward_option", f"world-clip.bundle_dir={bundle}", "--reward_option", f"world-aesthetic.bundle_dir={bundle}",
            "--judge_bundle", bundle, "--max_train_steps", 2, "--train_batch_size", 2, "--num_inference_steps", 3,
            "--grad_steps", 2, "--guidance_scale", 2.0, "--eval_steps", 2, "--checkpointing_steps", 1,
            "--num_eval_prompts", 2, "--eval_inference_steps", 3, "--switch_step", 1, "--learning_rate", 1e-3, *extra]
    return run_cli(*args)


@pytest.fixture(scope="module")
def sd1_run(tmp_path_factory, tiny_pipeline_dirs, tiny_bundle_dir, prompt_file):
    out = tmp_path_factory.mktemp("tc") / "run"
    result = run_tc(tiny_pipeline_dirs["sd1"], prompt_file, out, tiny_bundle_dir)
    assert result.exit_code == 0, result.output
    return out


def _spy_first_step(monkeypatch, seen):
    """Wrap the trainer base's fit: one backward of the real loss, then record which parameters got gradients."""
    from promptlift.methods import common
    from promptlift.methods.textcraftor import trainer

    real_fit, real_load = common.fit, trainer.load_pipeline

    def spy_load(*a, **kw):
        seen["pipe"] = real_load(*a, **kw)
        return seen["pipe"]

    def spy_fit(cfg, model, loss_fn, batch_fn, **kw):
        pipe = seen["pipe"]
        before = {n: {k: v.clone() for k, v in getattr(pipe, n).state_dict().items()}
                  for n in ("unet", "vae", "text_encoder")}
        loss, logs = loss_fn(model, batch_fn(0))
        loss.backward()
        seen["logs"] = logs
        seen["grads"] = {n: [k for k, p in getattr(pipe, n).named_parameters() if p.grad is not None]
                         for n in ("unet", "vae", "text_encoder")}
        seen["trainable"] = [k for k, p in model.named_parameters() if p.requires_grad]
        model.zero_grad()
        result = real_fit(cfg, model, loss_fn, batch_fn, **kw)
        seen["changed"] = {n: [k for k, v in getattr(pipe, n).state_dict().items() if not torch.equal(v, before[n][k])]
                           for n in before}
        return result

    monkeypatch.setattr(common, "fit", spy_fit)
    monkeypatch.setattr(trainer, "load_pipeline", spy_load)


def test_only_the_encoder_learns_and_frozen_models_hold_no_grad(tmp_path, tiny_pipeline_dirs, tiny_bundle_dir,
                                                                prompt_file, monkeypatch):
    seen = {}
    _spy_first_step(monkeypatch, seen)
    result = run_tc(tiny_pipeline_dirs["sd1"], prompt_file, tmp_path / "run", tiny_bundle_dir)
    assert result.exit_code == 0, result.output
    assert seen["grads"]["unet"] == [] and seen["grads"]["vae"] == []
    assert len(seen["grads"]["text_encoder"]) > 0
    assert seen["changed"]["unet"] == [] and seen["changed"]["vae"] == []
    assert len(seen["changed"]["text_encoder"]) > 0
    assert set(seen["logs"]) == {"reward/world-aesthetic-reward", "reward/world-clip"}
    from promptlift.rewards import load_reward

    reward = load_reward("world-aesthetic-reward", bundle_dir=str(tiny_bundle_dir))
    assert all(not p.requires_grad and p.grad is None for p in reward.parameters())


def test_lora_modes_train_only_lora_weights(tmp_path, tiny_pipeline_dirs, tiny_bundle_dir, prompt_file, monkeypatch):
    seen = {}
    _spy_first_step(monkeypatch, seen)
    result = run_tc(tiny_pipeline_dirs["sd1"], prompt_file, tmp_path / "enc", tiny_bundle_dir, "--use_lora", "--lora_rank", 2)
    assert result.exit_code == 0, result.output
    assert seen["trainable"] and all("lora" in k for k in seen["trainable"])
    assert seen["changed"]["unet"] == [] and all("lora" in k for k in seen["changed"]["text_encoder"])
    assert (tmp_path / "enc" / "final" / "pytorch_lora_weights.safetensors").is_file()

    result = run_tc(tiny_pipeline_dirs["sd1"], prompt_file, tmp_path / "unet", tiny_bundle_dir, "--train", "unet_lora",
                    "--lora_rank", 2)
    assert result.exit_code == 0, result.output
    assert all("lora" in k for k in seen["trainable"]) and seen["changed"]["text_encoder"] == []
    keys = load_file(tmp_path / "unet" / "final" / "pytorch_lora_weights.safetensors")
    assert keys and all(k.startswith("unet.") for k in keys)
    pipe = load_pipeline(tiny_pipeline_dirs["sd1"], lifts=load_lifts([f"textcraftor={tmp_path / 'unet' / 'final'}"]))
    assert any("lora" in k for k in pipe.unet.state_dict())


@pytest.mark.parametrize("arch", ["sd2", "sdxl"])
def test_sd2_and_sdxl_train_and_generate(tmp_path, arch, tiny_pipeline_dirs, tiny_bundle_dir, prompt_file):
    extra = ["--text_encoders", "text_encoder", "--text_encoders", "text_encoder_2"] if arch == "sdxl" else []
    result = run_tc(tiny_pipeline_dirs[arch], prompt_file, tmp_path / "run", tiny_bundle_dir, *extra)
    assert result.exit_code == 0, result.output
    final = tmp_path / "run" / "final"
    assert (final / "text_encoder" / "config.json").is_file()
    assert (final / "text_encoder_2" / "config.json").is_file() == (arch == "sdxl")
    lifts = load_lifts([f"textcraftor={final}"])
    pipe = load_pipeline(tiny_pipeline_dirs[arch], lifts=lifts)
    images = pipe(PROMPTS[:1], num_inference_steps=3, output_type="np").images
    assert images.shape[0] == 1 and (images >= 0).all()
    if arch == "sdxl":  # an encoder the run left as it was stays shared, not copied (2.8 GB in fp32 at full size)
        shutil.rmtree(final / "text_encoder_2")
        lifts = load_lifts([f"textcraftor={final}"])
        pipe, base = load_pipeline(tiny_pipeline_dirs[arch], lifts=lifts), load_pipeline(tiny_pipeline_dirs[arch])
        assert set(lifts[0].original_encoders()) == {"text_encoder"}
        tuned = type(base.text_encoder).from_pretrained(final / "text_encoder").state_dict()
        for module, expected in ((pipe.text_encoder, tuned), (pipe.text_encoder_2, base.text_encoder_2.state_dict()),
                                 (lifts[0].original_encoders()["text_encoder"], base.text_encoder.state_dict())):
            assert all(torch.equal(module.state_dict()[k], v) for k, v in expected.items())


def test_any_total_step_count_and_only_the_last_k_steps_carry_gradient(tiny_pipeline_dirs):
    from diffusers import DDIMScheduler

    pipe = load_pipeline(tiny_pipeline_dirs["sd1"])
    pipe.unet.requires_grad_(False)
    calls = []
    hook = pipe.unet.register_forward_pre_hook(lambda m, a: calls.append(torch.is_grad_enabled()))
    emb = encode_prompts(pipe, PROMPTS[:1])
    cond = Conditioning(torch.cat([emb.negative_prompt_embeds, emb.prompt_embeds]))
    trainable = Conditioning(cond.hidden.clone().requires_grad_(True))
    scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    out = sample_with_grad(pipe.unet, scheduler, latents, cond, trainable, 7, 3, 2.0, gradient_checkpointing=False)
    hook.remove()
    assert calls == [False] * 4 + [True] * 3
    out.sum().backward()
    assert trainable.hidden.grad is not None and trainable.hidden.grad.abs().sum() > 0
    # checkpointing recomputes the same function: identical values and gradients
    again = Conditioning(cond.hidden.clone().requires_grad_(True))
    out2 = sample_with_grad(pipe.unet, scheduler, latents, cond, again, 7, 3, 2.0, gradient_checkpointing=True)
    out2.sum().backward()
    torch.testing.assert_close(out2, out)
    torch.testing.assert_close(again.hidden.grad, trainable.hidden.grad)
    with pytest.raises(ValueError, match="grad_steps"):
        sample_with_grad(pipe.unet, scheduler, latents, cond, trainable, 4, 5, 2.0)


@pytest.mark.parametrize("arch", ["sd1", "sdxl"])
def test_unconditional_embedding_encoded_once_gives_the_same_values_and_gradient(arch, tiny_pipeline_dirs):
    from promptlift.methods.textcraftor.trainer import _conditioning, encode_conditioning

    pipe = load_pipeline(tiny_pipeline_dirs[arch])
    pipe.text_encoder.requires_grad_(True)
    weight = pipe.text_encoder.get_input_embeddings().weight
    results = []
    for make in (lambda: _conditioning(pipe, encode_prompts(pipe, PROMPTS, grad=True), 32),
                 lambda: encode_conditioning(pipe, PROMPTS, True, 32, grad=True)):
        weight.grad = None
        cond = make()
        (cond.hidden.square() * torch.linspace(0, 1, cond.hidden.shape[0])[:, None, None]).sum().backward()
        results.append((cond.hidden.detach(), {k: v.clone() for k, v in (cond.added or {}).items()}, weight.grad.clone()))
    (h0, a0, g0), (h1, a1, g1) = results
    assert h0.shape == h1.shape == (2 * len(PROMPTS), *h0.shape[1:])
    torch.testing.assert_close(h1, h0)
    for k in a0:
        torch.testing.assert_close(a1[k], a0[k])
    torch.testing.assert_close(g1, g0, rtol=1e-4, atol=1e-4 * float(g0.abs().max()))  # float sums in other orders


def test_resume_restores_the_exact_state(tmp_path, tiny_pipeline_dirs, tiny_bundle_dir, prompt_file):
    straight = tmp_path / "straight"
    assert run_tc(tiny_pipeline_dirs["sd1"], prompt_file, straight, tiny_bundle_dir, "--max_train_steps", 3).exit_code == 0
    resumed = tmp_path / "resumed"
    assert run_tc(tiny_pipeline_dirs["sd1"], prompt_file, resumed, tiny_bundle_dir, "--max_train_steps", 2).exit_code == 0
    result = run_tc(tiny_pipeline_dirs["sd1"], prompt_file, resumed, tiny_bundle_dir, "--max_train_steps", 3,
                    "--resume_from_checkpoint", "latest")
    assert result.exit_code == 0 and "resumed from" in result.output
    a = load_file(straight / "final" / "text_encoder" / "model.safetensors")
    b = load_file(resumed / "final" / "text_encoder" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_tuned_encoder_with_missing_or_extra_keys_is_refused(tmp_path, sd1_run, tiny_pipeline_dirs):
    for case in ("missing", "unexpected"):
        folder = tmp_path / case
        shutil.copytree(sd1_run / "final", folder)
        weights = folder / "text_encoder" / "model.safetensors"
        state = load_file(weights)
        if case == "missing":
            state.pop(sorted(state)[3])
        else:
            state["text_model.extra.weight"] = torch.zeros(2)
        save_file(state, weights)
        with pytest.raises(ValueError, match=f"{case} keys"):
            load_pipeline(tiny_pipeline_dirs["sd1"], lifts=load_lifts([f"textcraftor={folder}"]))


def test_alpha_hybrid_schedule_and_weight_mixes(sd1_run, tiny_pipeline_dirs):
    model, final = tiny_pipeline_dirs["sd1"], sd1_run / "final"
    base = load_pipeline(model)

    def embeds_and_image(lifts, steps=3):
        pipe = load_pipeline(model, lifts=lifts)
        e = encode_prompts(pipe, PROMPTS[:2], lifts=lifts)
        gens = [torch.Generator().manual_seed(i) for i in range(2)]
        return e, call_with_lifts(pipe, lifts, PROMPTS[:2], num_inference_steps=steps, generator=gens, output_type="pt").images

    plain, plain_img = embeds_and_image([])
    assert json.loads((final / "textcraftor.json").read_text())["switch_step"] == 1
    tuned, tuned_img = embeds_and_image(load_lifts([f"textcraftor={final}"], ["textcraftor.switch_step=0"]))
    assert not torch.allclose(tuned.prompt_embeds, plain.prompt_embeds)
    zero, zero_img = embeds_and_image(load_lifts([f"textcraftor={final}"], ["textcraftor.alpha=0", "textcraftor.switch_step=0"]))
    torch.testing.assert_close(zero.prompt_embeds, plain.prompt_embeds)
    half, _ = embeds_and_image(load_lifts([f"textcraftor={final}"], ["textcraftor.alpha=0.5", "textcraftor.switch_step=0"]))
    torch.testing.assert_close(half.prompt_embeds, (plain.prompt_embeds + tuned.prompt_embeds) / 2)
    # hybrid: switching after the last step is the base model; switching at step 1 differs from both ends
    _, never = embeds_and_image(load_lifts([f"textcraftor={final}"], ["textcraftor.switch_step=3"]))
    torch.testing.assert_close(never, plain_img)
    _, hybrid = embeds_and_image(load_lifts([f"textcraftor={final}"]))  # switch_step 1 from textcraftor.json
    assert not torch.allclose(hybrid, plain_img) and not torch.allclose(hybrid, tuned_img)
    # weight mixes: base:0.5,run:0.5 is the average of the two encoders' weights
    lifts = load_lifts([f"textcraftor=base:0.5,{final}:0.5"], ["textcraftor.switch_step=0"])
    mixed = load_pipeline(model, lifts=lifts).text_encoder.state_dict()
    tuned_sd = type(base.text_encoder).from_pretrained(final / "text_encoder").state_dict()
    changed = [k for k, v in tuned_sd.items() if not torch.equal(v, base.text_encoder.state_dict()[k])]
    assert changed
    for key in changed:
        torch.testing.assert_close(mixed[key], (base.text_encoder.state_dict()[key] + tuned_sd[key]) / 2)
    assert isinstance(lifts[0], TextCraftorLift) and lifts[0].describe()["alpha"] == 1.0


def test_bad_input_is_named(tmp_path, prompt_file):
    with pytest.raises(ValueError, match="sum to 1.5"):
        parse_mix("a:1,b:0.5")
    with pytest.raises(ValueError, match="evaluation-only"):
        TextCraftorConfig(prompts=str(prompt_file), rewards=["world-aesthetic:1"])
    with pytest.raises(ValueError, match="unknown reward"):
        TextCraftorConfig(prompts=str(prompt_file), rewards=["nope:1"])
    with pytest.raises(ValueError, match="grad_steps"):
        TextCraftorConfig(prompts=str(prompt_file), rewards=["world-clip:1"], grad_steps=30)
    with pytest.raises(ValueError, match="no option"):
        load_lifts([f"textcraftor={tmp_path}"], ["textcraftor.beta=1"])
    with pytest.raises(ValueError, match="holds no tuned encoder"):
        load_lifts([f"textcraftor={tmp_path}"])
