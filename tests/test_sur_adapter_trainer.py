"""SUR-adapter training: the diffusion loss trains the adapter, everything else stays frozen, the saved adapter
(LLM projection included) reloads to identical outputs, and SD1/SD2/SDXL tiny pipelines train and generate."""

import json
import os

import pytest
import torch

from promptlift.methods.sur_adapter.config import SURAdapterConfig
from promptlift.methods.sur_adapter.lift import SURAdapterLift
from promptlift.methods.sur_adapter.trainer import _batch_fn
from promptlift.pipeline import encode_prompts, load_lifts, load_pipeline
from helpers import run_cli


@pytest.fixture
def triples(world_set):
    """Triples: a small world imagefolder with its narrative and complex columns."""
    return world_set


def run_sur(model, data, out, bundle, *extra):
    args = ["train", "sur-adapter", "--pretrained_model_name_or_path", model,
            "--eval_prompts", "literal", "--eval_judge", "world-aesthetic", "--train_data_dir", data,
            "--output_dir", out, "--max_train_steps", 4, "--train_batch_size", 3, "--eval_steps", 2,
            "--checkpointing_steps", 2, "--num_eval_prompts", 2, "--eval_inference_steps", 2, "--num_heads", 4,
            "--reward_option", f"world-aesthetic.bundle_dir={bundle}", "--judge_bundle", bundle,
            "--lr_warmup_steps", 1, "--learning_rate", 1e-2, "--simple_column", "narrative", *extra]
    return run_cli(*args)


def forbid_rebuilding_the_cache(monkeypatch):
    """From here on, a run that builds its features instead of reading the cache fails."""
    from promptlift.methods.sur_adapter import trainer

    def no_rebuild(*a, **k):
        raise AssertionError("the features were cached; nothing to rebuild")

    monkeypatch.setattr(trainer, "build_cache", no_rebuild)


def test_trains_saves_and_generates_on_every_architecture(tmp_path, arch, tiny_dir, tiny_bundle_dir, triples):
    result = run_sur(tiny_dir, triples, tmp_path / "sur", tiny_bundle_dir)
    assert result.exit_code == 0, result.output
    for folder in ("best", "final"):
        assert (tmp_path / "sur" / folder / "model.safetensors").is_file()
        config = json.loads((tmp_path / "sur" / folder / "lift_config.json").read_text())
        record = config["base_model"]  # what it was trained on
        assert config["lift_type"] == "sur-adapter" and config["options"]["gate"] == "default"
        assert record["pretrained_model_name_or_path"] == str(tiny_dir) and record["cross_attention_dim"] == \
            load_pipeline(tiny_dir).unet.config.cross_attention_dim
        card = (tmp_path / "sur" / folder / "README.md").read_text()
        assert "arxiv.org/abs/2305.05189" in card and "Needs promptlift" in card and "## Recipe" in card
    lift = load_lifts([f"sur-adapter={tmp_path / 'sur' / 'final'}"])
    assert lift[0].adapter.out.weight.abs().sum() > 0, "the zero-initialised output layer was trained"
    pipe = load_pipeline(tiny_dir, lifts=lift)
    base = load_pipeline(tiny_dir)
    prompts = ["Picture a lone sphere the color of a grape by the seaside.", "two red boats"]
    lifted = encode_prompts(pipe, prompts, lifts=lift)
    plain = encode_prompts(base, prompts)
    assert not torch.allclose(lifted.prompt_embeds, plain.prompt_embeds)
    torch.testing.assert_close(lifted.negative_prompt_embeds, plain.negative_prompt_embeds)  # uncond untouched
    if arch == "sdxl":  # the pooled embedding of text_encoder_2 is adapted too
        assert lift[0].adapter.pooled is not None
        assert not torch.allclose(lifted.pooled_prompt_embeds, plain.pooled_prompt_embeds)
    else:
        assert lift[0].adapter.pooled is None
    image = pipe(prompts, num_inference_steps=2, output_type="np").images  # the lifted pipeline adapts them itself
    assert image.shape[0] == 2 and (image >= 0).all()
    logs = [json.loads(x) for x in (tmp_path / "sur" / "logs.jsonl").read_text().splitlines()]
    assert any("eval" in x and "semantic_all" in x["eval"] for x in logs)


def test_diffusion_gradient_reaches_the_adapter_and_nothing_else(tmp_path, tiny_pipeline_dirs, tiny_bundle_dir,
                                                                 triples, monkeypatch):
    """Only the diffusion term (distillation weights 0): the adapter still learns; UNet, encoder and VAE don't."""
    from promptlift.methods import common
    from promptlift.methods.sur_adapter import trainer

    seen = {}
    real_fit = common.fit  # the trainer base runs the loop

    def spy_fit(cfg, model, loss_fn, batch_fn, **kw):
        pipe_params = {n: p.clone() for n, p in spy_fit.pipe.unet.named_parameters()}
        loss, _ = loss_fn(model, batch_fn(0))
        loss.backward()
        seen["grad"] = model.out.weight.grad.abs().sum().item()
        seen["unet_grads"] = [p.grad for p in spy_fit.pipe.unet.parameters() if p.grad is not None]
        model.zero_grad()
        result = real_fit(cfg, model, loss_fn, batch_fn, **kw)
        seen["unet_same"] = all(torch.equal(p, pipe_params[n]) for n, p in spy_fit.pipe.unet.named_parameters())
        return result

    real_load = trainer.load_frozen_pipeline

    def spy_load(*a, **kw):
        spy_fit.pipe = real_load(*a, **kw)
        return spy_fit.pipe

    monkeypatch.setattr(common, "fit", spy_fit)
    monkeypatch.setattr(trainer, "load_frozen_pipeline", spy_load)
    result = run_sur(tiny_pipeline_dirs["sd1"], triples, tmp_path / "sur", tiny_bundle_dir,
                     "--llm_weight", 0, "--complex_weight", 0)
    assert result.exit_code == 0, result.output
    assert seen["grad"] > 0 and seen["unet_grads"] == [] and seen["unet_same"]


def test_unet_output_distillation_alone_trains_the_adapter(tmp_path, tiny_pipeline_dirs, tiny_bundle_dir, triples,
                                                          monkeypatch):
    result = run_sur(tiny_pipeline_dirs["sd1"], triples, tmp_path / "sur", tiny_bundle_dir, "--diffusion_weight", 0,
                     "--llm_weight", 0, "--complex_weight", 1, "--complex_target", "unet", "--logging_steps", 1,
                     "--feature_cache_dir", tmp_path / "features")
    assert result.exit_code == 0, result.output
    cached = list((tmp_path / "features").glob("sur-*.pt"))
    assert len(cached) == 1 and torch.load(cached[0])["simple"].shape[0] == 6  # a second run reads it
    forbid_rebuilding_the_cache(monkeypatch)
    again = run_sur(tiny_pipeline_dirs["sd1"], triples, tmp_path / "sur2", tiny_bundle_dir, "--feature_cache_dir",
                    tmp_path / "features", "--max_train_steps", 1)
    assert again.exit_code == 0, again.output
    logs = [json.loads(x) for x in (tmp_path / "sur" / "logs.jsonl").read_text().splitlines() if '"loss"' in x]
    assert logs and all(x["diffusion"] == 0 and x["complex"] > 0 for x in logs)
    lift = SURAdapterLift("sur-adapter", tmp_path / "sur" / "final")
    assert lift.adapter.out.weight.abs().sum() > 0


def test_saved_adapter_reloads_to_identical_outputs(tmp_path, tiny_pipeline_dirs, tiny_bundle_dir, triples):
    result = run_sur(tiny_pipeline_dirs["sd1"], triples, tmp_path / "sur", tiny_bundle_dir, "--llm_at_inference")
    assert result.exit_code == 0, result.output
    folder = tmp_path / "sur" / "final"
    a, b = SURAdapterLift("sur-adapter", folder), SURAdapterLift("sur-adapter", folder)
    assert a.teacher is not None, "an adapter trained to read the LLM at inference loads its teacher"
    torch.testing.assert_close(a.adapter.state_dict(), b.adapter.state_dict())
    assert a.adapter.llm_projection.weight.abs().sum() > 0
    pipe = load_pipeline(tiny_pipeline_dirs["sd1"])
    prompts = ["Someone spotted a solitary lavender plaything where the waves meet the sand."]
    x = encode_prompts(pipe, prompts, lifts=[a]).prompt_embeds
    torch.testing.assert_close(x, encode_prompts(pipe, prompts, lifts=[b]).prompt_embeds)  # deterministic, no dropout
    umask = os.umask(0)
    os.umask(umask)
    files = [f for f in (tmp_path / "sur").rglob("*") if f.is_file()]
    assert folder / "model.safetensors" in files and any("checkpoint-" in str(f) for f in files)
    # readable as an ordinary write leaves a file (safetensors >= 0.8 writes 0600 on its own)
    assert {f.relative_to(tmp_path): oct(f.stat().st_mode & 0o777) for f in files
            if f.stat().st_mode & 0o777 != 0o666 & ~umask} == {}


def test_bad_config_is_named(tmp_path, triples):
    with pytest.raises(ValueError, match="not an imagefolder"):
        SURAdapterConfig(train_data_dir=tmp_path)
    with pytest.raises(ValueError, match="every loss weight is 0"):
        SURAdapterConfig(train_data_dir=triples, diffusion_weight=0, llm_weight=0, complex_weight=0)
    with pytest.raises(ValueError, match="simple_column"):
        from promptlift.methods.sur_adapter.trainer import build_cache

        build_cache(None, SURAdapterConfig(train_data_dir=triples, simple_column="nope"), None)


def _tiny_captioner(root):
    """A tiny random BLIP captioner (the architecture SURD used), saved like a hub model."""
    from transformers import BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor

    from promptlift.judges import build_tokenizer

    torch.manual_seed(0)
    tokenizer = build_tokenizer(model_max_length=32)
    config = BlipConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_hidden_layers=1,
                         num_attention_heads=4, max_position_embeddings=32, encoder_hidden_size=32,
                         bos_token_id=tokenizer.cls_token_id, sep_token_id=tokenizer.sep_token_id,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.sep_token_id),
        vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=4,
                           image_size=32, patch_size=8))
    BlipForConditionalGeneration(config).save_pretrained(root)
    image_processor = BlipImageProcessor(size={"height": 32, "width": 32})
    BlipProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(root)
    return str(root)


def test_triples_from_a_column_with_semantic_correction(tmp_path, tiny_bundle_dir, triples):
    from promptlift.methods.sur_adapter.triples import TriplesConfig, build_triples

    # one corrupt image: dropped with its reason, never a crash
    data = tmp_path / "pairs"
    import shutil

    shutil.copytree(triples, data)
    rows = [json.loads(x) for x in (data / "metadata.jsonl").read_text().splitlines()]
    (data / rows[0]["file_name"]).write_bytes(b"not a png")
    opt = [f"world-clip.bundle_dir={tiny_bundle_dir}"]
    cfg = dict(input=str(data), simple_column="literal", complex_column="complex", clip_reward="world-clip",
               reward_option=opt)
    out = build_triples(TriplesConfig(output_dir=tmp_path / "all", **cfg))
    decisions = [json.loads(x) for x in (out / "decisions.jsonl").read_text().splitlines()]
    assert len(decisions) == 6 and not decisions[0]["kept"] and "unreadable" in decisions[0]["reason"]
    kept = [json.loads(x) for x in (out / "metadata.jsonl").read_text().splitlines()]
    assert len(kept) == 5 and all({"simple", "complex", "image_clip", "text_agreement"} <= set(k) for k in kept)
    # a threshold between the scores drops exactly the triples below it, and says why
    scores = sorted(d["text_agreement"] for d in decisions if d["kept"])
    strict = build_triples(TriplesConfig(output_dir=tmp_path / "strict", min_text_agreement=scores[2], **cfg))
    strict_decisions = [json.loads(x) for x in (strict / "decisions.jsonl").read_text().splitlines()]
    dropped = [d for d in strict_decisions if "complex one" in d["reason"]]
    assert len(dropped) == 2 and all(d["text_agreement"] < scores[2] for d in dropped)
    with pytest.raises(FileExistsError, match="overwrite"):
        build_triples(TriplesConfig(output_dir=tmp_path / "all", **cfg))


def test_triples_with_a_captioning_model(tmp_path, tiny_bundle_dir, triples):
    from promptlift.methods.sur_adapter.triples import TriplesConfig, build_triples

    out = build_triples(TriplesConfig(input=str(triples), output_dir=tmp_path / "captioned", complex_column="complex",
                                      captioner=_tiny_captioner(tmp_path / "blip"), max_caption_tokens=5,
                                      clip_reward="world-clip", reward_option=[f"world-clip.bundle_dir={tiny_bundle_dir}"]))
    kept = [json.loads(x) for x in (out / "metadata.jsonl").read_text().splitlines()]
    assert len(kept) == 6 and all(isinstance(k["simple"], str) for k in kept)
    with pytest.raises(ValueError, match="captioner"):
        TriplesConfig(input=str(triples))


def test_extra_simple_columns_add_a_training_row_per_column(tmp_path, tiny_pipeline_dirs, tiny_bundle_dir, triples):
    result = run_sur(tiny_pipeline_dirs["sd1"], triples, tmp_path / "sur", tiny_bundle_dir, "--extra_simple_columns",
                     "literal", "--feature_cache_dir", tmp_path / "features", "--max_train_steps", 1)
    assert result.exit_code == 0, result.output
    cache = torch.load(next((tmp_path / "features").glob("sur-*.pt")))
    assert cache["simple"].shape[0] == cache["params"].shape[0] == cache["complex"].shape[0] == 12  # 6 triples x 2
    torch.testing.assert_close(cache["params"][:6], cache["params"][6:])  # the same images under both prompts


def test_the_refiners_rewrites_train_as_more_rows(tmp_path, tiny_pipeline_dirs, tiny_bundle_dir, triples):
    """`--refiner`: each simple prompt also trains as the refiner's rewrite of it, the prompt the adapter reads behind
    the refiner in the lifted stack; the rows are the rewrites the refiner lift writes."""
    from test_refiner import run_refiner

    model = tiny_pipeline_dirs["sd1"]
    assert run_refiner(model, triples, tmp_path / "refiner", tiny_bundle_dir).exit_code == 0
    spec = f"refiner={tmp_path / 'refiner' / 'final'}"
    result = run_sur(model, triples, tmp_path / "sur", tiny_bundle_dir, "--refiner", spec, "--extra_simple_columns",
                     "literal", "--feature_cache_dir", tmp_path / "features", "--max_train_steps", 1)
    assert result.exit_code == 0, result.output
    cache = torch.load(next((tmp_path / "features").glob("sur-*.pt")))
    assert cache["simple"].shape[0] == cache["complex"].shape[0] == 24  # 6 triples x 2 columns x (as written, rewritten)
    pipe = load_pipeline(model)
    lifts = load_lifts([spec])
    lifts[0].apply(pipe)
    narrative = [json.loads(line)["narrative"] for line in (triples / "metadata.jsonl").read_text().splitlines()][:6]
    rewritten = encode_prompts(pipe, lifts[0].rewrite_prompts(narrative), do_classifier_free_guidance=False)
    torch.testing.assert_close(cache["simple"][6:12], rewritten.prompt_embeds)  # rows 6-11: the narratives' rewrites
    assert not torch.allclose(cache["simple"][:6], cache["simple"][6:12])
    # each row knows the row of its prompt as written: a rewrite's change of the embedding is one subtraction away
    assert cache["source"].tolist() == [*range(6)] * 2 + [*range(12, 18)] * 2
    cfg = SURAdapterConfig(train_data_dir=triples, simple_column="narrative", refiner=spec, complex_target="tokens", train_batch_size=24,
                           rewrite_target="complex+change")
    batch = _batch_fn(cfg, cache, scale=1.0)(0)
    order = [next(j for j in range(24) if torch.equal(cache["simple"][j], row)) for row in batch["simple"]]
    change = cache["simple"][order] - cache["simple"][cache["source"][order]]
    torch.testing.assert_close(batch["complex"], cache["complex"][order] + change)
    assert change[[i for i, j in enumerate(order) if j in range(6, 12)]].abs().amax() > 0  # rewrites: target moved
    assert change[[i for i, j in enumerate(order) if j in range(6)]].abs().amax() == 0  # prompts as written: as before
    with pytest.raises(ValueError, match="set `refiner` and `complex_target: tokens`"):
        SURAdapterConfig(train_data_dir=triples, rewrite_target="complex+change")


def test_teacher_tokens_with_the_token_target_train_and_generate(tmp_path, arch, tiny_dir, tiny_bundle_dir, triples):
    """The adapter reads the teacher's token states (only them, on SD2), fits the complex embedding per token, and
    the UNet terms read one row of each batch; the saved adapter reloads with its teacher and generates."""
    only_teacher = ["--no-read_prompt_embeds"] if arch == "sd2" else []
    result = run_sur(tiny_dir, triples, tmp_path / "sur", tiny_bundle_dir, "--llm_at_inference",
                     "--llm_tokens", "--beta", 1.0, "--complex_target", "tokens", "--complex_weight", 1.0,
                     "--diffusion_batch_size", 1, "--logging_steps", 1, "--max_train_steps", 6, *only_teacher)
    assert result.exit_code == 0, result.output
    logs = [json.loads(x) for x in (tmp_path / "sur" / "logs.jsonl").read_text().splitlines() if '"loss"' in x]
    assert logs[-1]["complex"] < logs[0]["complex"], "the per-token target is fitted"
    lift = SURAdapterLift("sur-adapter", tmp_path / "sur" / "final")
    assert lift.adapter.llm_tokens and lift.teacher is not None
    assert lift.adapter.read_prompt_embeds is not bool(only_teacher)
    assert lift.teacher.max_length == 77, "the lift reads as many teacher tokens as training did (llm_max_tokens)"
    pipe = load_pipeline(tiny_dir)
    prompts = ["Someone spotted a solitary lavender plaything where the waves meet the sand.", "two red boats"]
    lifted = encode_prompts(pipe, prompts, lifts=[lift])
    alone = encode_prompts(pipe, prompts[1:], lifts=[lift])  # the teacher's padding of a batch changes nothing
    torch.testing.assert_close(lifted.prompt_embeds[1:], alone.prompt_embeds, rtol=1e-4, atol=1e-5)
    image = pipe(**lifted.as_kwargs(), num_inference_steps=2, output_type="np").images
    assert image.shape[0] == 2
    with pytest.raises(ValueError, match="diffusion_batch_size"):
        SURAdapterConfig(train_data_dir=triples, train_batch_size=4, diffusion_batch_size=5)
    with pytest.raises(ValueError, match="set `llm_at_inference`"):
        SURAdapterConfig(train_data_dir=triples, llm_tokens=True)


def test_a_cache_with_teacher_tokens_serves_a_pooled_run(tmp_path, tiny_pipeline_dirs, tiny_bundle_dir, triples,
                                                         monkeypatch):
    tokens = ["--llm_at_inference", "--llm_tokens", "--complex_target", "tokens", "--feature_cache_dir", tmp_path / "f"]
    first = run_sur(tiny_pipeline_dirs["sd1"], triples, tmp_path / "a", tiny_bundle_dir, *tokens, "--max_train_steps", 1)
    assert first.exit_code == 0, first.output
    forbid_rebuilding_the_cache(monkeypatch)
    pooled = run_sur(tiny_pipeline_dirs["sd1"], triples, tmp_path / "b", tiny_bundle_dir, "--feature_cache_dir",
                     tmp_path / "f", "--max_train_steps", 1)
    assert pooled.exit_code == 0, pooled.output
    assert not SURAdapterLift("sur-adapter", tmp_path / "b" / "final").adapter.llm_tokens


def test_the_attribute_term_trains_the_adapter(tmp_path, tiny_pipeline_dirs, tiny_bundle_dir, triples):
    """The attribute head (the world's labels; a refiner's rewrite keeps its triple's) trains and is logged, read off
    the adapted embedding or off the teacher's pools (the bundle's form); a label column the data lack is named
    before any training."""
    from promptlift.methods.sur_adapter.trainer import attribute_labels

    result = run_sur(tiny_pipeline_dirs["sd1"], triples, tmp_path / "sur", tiny_bundle_dir, "--llm_at_inference",
                     "--llm_tokens", "--complex_target", "tokens", "--complex_weight", 1.0,
                     "--attribute_columns", "kind", "--attribute_columns", "color", "--attribute_weight", 1.0, "--diffusion_weight", 0,
                     "--logging_steps", 1, "--max_train_steps", 8, "--extra_simple_columns", "literal")
    assert result.exit_code == 0, result.output
    logs = [json.loads(x) for x in (tmp_path / "sur" / "logs.jsonl").read_text().splitlines() if '"loss"' in x]
    assert logs[-1]["attributes"] < logs[0]["attributes"]
    pooled = run_sur(tiny_pipeline_dirs["sd1"], triples, tmp_path / "slots", tiny_bundle_dir, "--llm_at_inference",
                     "--llm_tokens", "--complex_target", "tokens", "--complex_weight", 1.0, "--llm_slots", 2,
                     "--llm_pools_only", "--class_memory",
                     "--attribute_columns", "kind", "--attribute_columns", "color", "--attribute_weight", 1.0,
                     "--diffusion_weight", 0, "--logging_steps", 1, "--max_train_steps", 8)
    assert pooled.exit_code == 0, pooled.output
    logs = [json.loads(x) for x in (tmp_path / "slots" / "logs.jsonl").read_text().splitlines() if '"loss"' in x]
    assert logs[-1]["attributes"] < logs[0]["attributes"]
    adapter = SURAdapterLift("sur-adapter", tmp_path / "slots" / "final").adapter
    assert adapter.slots == 2 and adapter.pools_only and adapter.class_memory
    rows = [json.loads(x) for x in (triples / "metadata.jsonl").read_text().splitlines()]
    cache = {"record": torch.tensor([0, 1, 0, 1])}  # two columns of two triples
    cfg = SURAdapterConfig(train_data_dir=triples, attribute_columns=["kind"], attribute_weight=1.0, max_train_samples=2)
    labels, classes = attribute_labels(cfg, cache)
    assert [classes["kind"][i] for i in labels[:, 0]] == [rows[i]["kind"] for i in (0, 1, 0, 1)]
    with pytest.raises(ValueError, match="attribute_columns"):
        attribute_labels(SURAdapterConfig(train_data_dir=triples, attribute_columns=["mood"], attribute_weight=1.0), cache)
    with pytest.raises(ValueError, match="attribute_weight"):
        SURAdapterConfig(train_data_dir=triples, attribute_columns=["kind"])
    with pytest.raises(ValueError, match="llm_slots"):
        SURAdapterConfig(train_data_dir=triples, llm_at_inference=True, llm_tokens=True, llm_slots=1,
                         attribute_columns=["kind", "color"], attribute_weight=1.0)


def test_row_columns_reads_each_rows_column_off_the_cache_order():
    from promptlift.methods.sur_adapter.trainer import row_columns

    plain = type("Cfg", (), {"refiner": None, "extra_simple_columns": ["literal", "complex"], "feature_cache_dir": None})
    record = torch.tensor([0, 1, 0, 1, 0, 1, 2, 2, 2])  # two batches: triples 0-1, then triple 2; three columns each
    assert row_columns(plain, {"record": record}).tolist() == [0, 0, 1, 1, 2, 2, 0, 1, 2]
    rewritten = type("Cfg", (), {"refiner": "refiner", "extra_simple_columns": ["literal"], "feature_cache_dir": None})
    record = torch.tensor([0, 1] * 4)  # column 0 as written, its rewrites, column 1 as written, its rewrites
    assert row_columns(rewritten, {"record": record}).tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    with pytest.raises(ValueError, match="rebuild"):
        row_columns(rewritten, {"record": torch.tensor([0] * 5)})


def test_learnt_gate_trains_on_the_columns_and_weighs_the_adapters_change(tmp_path, tiny_pipeline_dirs, tiny_bundle_dir,
                                                                          triples, monkeypatch):
    """`gate_columns` trains a gate head on the base embedding (literal rows: leave; narrative rows: adapt); the lift
    then applies the adapter's change times the head's probability, by default, and `gate=none` applies it whole.
    The trainer's held-out check measures the adapter whole."""
    from promptlift.methods.heldout import HeldOutEvaluator

    checked, call = [], HeldOutEvaluator.__call__
    monkeypatch.setattr(HeldOutEvaluator, "__call__", lambda self, lifts, *a, **k: checked.append(lifts[-1].gate)
                        or call(self, lifts, *a, **k))
    result = run_sur(tiny_pipeline_dirs["sd1"], triples, tmp_path / "sur", tiny_bundle_dir, "--llm_at_inference",
                     "--llm_tokens", "--complex_target", "tokens", "--complex_weight", 1.0, "--diffusion_weight", 0,
                     "--extra_simple_columns", "literal", "--gate_columns", "literal", "--gate_weight", 1.0,
                     "--logging_steps", 1, "--max_train_steps", 8)
    assert result.exit_code == 0, result.output
    logs = [json.loads(x) for x in (tmp_path / "sur" / "logs.jsonl").read_text().splitlines() if '"loss"' in x]
    assert logs[-1]["gate"] < logs[0]["gate"]
    assert checked and all(gate is None for gate in checked)
    folder = tmp_path / "sur" / "final"
    pipe = load_pipeline(tiny_pipeline_dirs["sd1"])
    rows = [json.loads(x) for x in (triples / "metadata.jsonl").read_text().splitlines()][:2]
    prompts = [rows[0]["narrative"], rows[1]["literal"]]
    gated = SURAdapterLift("sur-adapter", folder)
    assert gated.gate == "learnt" and gated.describe()["gate"] == "learnt"
    base = encode_prompts(pipe, prompts).prompt_embeds
    whole = encode_prompts(pipe, prompts, lifts=[SURAdapterLift("sur-adapter", folder, gate="none")]).prompt_embeds
    out = encode_prompts(pipe, prompts, lifts=[gated]).prompt_embeds
    w = gated.last_gates
    assert ((w > 0) & (w < 1)).all()
    torch.testing.assert_close(out, base + w.view(-1, 1, 1) * (whole - base))
    with pytest.raises(ValueError, match="gate_columns"):
        SURAdapterConfig(train_data_dir=triples, simple_column="narrative", extra_simple_columns=["literal"],
                         gate_columns=["narrative", "literal"])
    with pytest.raises(ValueError, match="gate_columns"):
        SURAdapterConfig(train_data_dir=triples, simple_column="narrative", gate_columns=["mood"])


def test_num_threads_holds_from_the_first_model_loaded(tmp_path, tiny_pipeline_dirs, tiny_bundle_dir, triples, monkeypatch):
    """`--num_threads` is what keeps concurrent jobs off each other's cores: the feature cache, built before training
    starts, keeps to it too (it once ran at torch's default)."""
    from promptlift.methods.sur_adapter import trainer

    seen = []

    def record(*args, **kwargs):
        seen.append(torch.get_num_threads())
        raise RuntimeError("stop here")

    monkeypatch.setattr(trainer, "load_frozen_pipeline", record)
    before = torch.get_num_threads()
    try:
        wanted = 1 if before != 1 else 2
        result = run_sur(tiny_pipeline_dirs["sd1"], triples, tmp_path / "sur", tiny_bundle_dir, "--num_threads", wanted)
    finally:
        torch.set_num_threads(before)
    assert "stop here" in result.output and seen == [wanted]
