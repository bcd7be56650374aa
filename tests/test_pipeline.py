import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

from promptlift.pipeline import (
    LIFTS,
    Lift,
    call_with_lifts,
    check_prompts,
    encode_prompts,
    load_lifts,
    load_pipeline,
    parse_lift,
    register_lift,
)

EXPECTED_CLASS = {"sd1": StableDiffusionPipeline, "sd2": StableDiffusionPipeline, "sdxl": StableDiffusionXLPipeline}


def _images(pipe, prompts=("a red ball",), lifts=(), seed=0, steps=3):
    gens = [torch.Generator().manual_seed(seed) for _ in prompts]
    return call_with_lifts(pipe, list(lifts), list(prompts), num_inference_steps=steps, generator=gens, output_type="np",
                           guidance_scale=3.0).images


def test_loads_each_architecture_on_cpu_in_fp32(arch, tiny_dir):
    pipe = load_pipeline(tiny_dir)
    assert type(pipe) is EXPECTED_CLASS[arch]
    assert pipe.device.type == "cpu" and pipe.unet.dtype == torch.float32
    expected = "v_prediction" if arch == "sd2" else "epsilon"
    assert pipe.scheduler.config.prediction_type == expected


def test_encode_prompts_shapes(arch, tiny_dir):
    pipe = load_pipeline(tiny_dir)
    embeds = encode_prompts(pipe, ["a red ball", "two boats"])
    assert embeds.prompt_embeds.shape == (2, 77, pipe.unet.config.cross_attention_dim)
    assert embeds.negative_prompt_embeds.shape == embeds.prompt_embeds.shape
    if arch == "sdxl":
        assert embeds.pooled_prompt_embeds.shape == (2, 32)
        assert set(embeds.as_kwargs()) == {
            "prompt_embeds", "negative_prompt_embeds", "pooled_prompt_embeds", "negative_pooled_prompt_embeds"
        }
    else:
        assert set(embeds.as_kwargs()) == {"prompt_embeds", "negative_prompt_embeds"}


@pytest.mark.parametrize(
    "make_source, message",
    [
        (lambda tmp: str(tmp / "missing"), "does not exist and is not a hub id"),
        (lambda tmp: (tmp / "f.safetensors").write_bytes(b"x") and str(tmp / "f.safetensors"), "could not be read as a checkpoint"),
        (lambda tmp: (tmp / "notes.txt").write_text("x") and str(tmp / "notes.txt"), "is a file but not a checkpoint"),
        (lambda tmp: (tmp / "empty").mkdir() or str(tmp / "empty"), "no model_index.json"),
        (lambda tmp: "nobody/no-such-model", "could not load `model` 'nobody/no-such-model'"),
    ],
)
def test_bad_model_sources_are_named(tmp_path, make_source, message):
    source = make_source(tmp_path)
    with pytest.raises(ValueError) as e:
        load_pipeline(source)
    assert message in str(e.value) and source in str(e.value)


def test_check_prompts_refuses_empty_and_long(tiny_pipeline_dirs):
    pipe = load_pipeline(tiny_pipeline_dirs["sd1"])
    with pytest.raises(ValueError, match="prompt 1 is empty"):
        check_prompts(pipe, ["ok", "  "])
    long = "word " * 30  # 150 byte-level tokens > 77
    with pytest.raises(ValueError, match="would be cut: .*--on_long_prompt truncate"):
        check_prompts(pipe, [long])
    cut = check_prompts(pipe, ["short", long], on_long_prompt="truncate")
    assert list(cut) == [1] and cut[1] and long.replace(" ", "").endswith(cut[1].replace(" ", ""))


def test_parse_lift_and_unknown_lift():
    assert parse_lift("unet=/some/where") == ("unet", __import__("pathlib").Path("/some/where"))
    with pytest.raises(ValueError, match="unknown lift 'nope'.*registered lifts: .*lora"):
        parse_lift("nope=/x")


@pytest.mark.parametrize(
    "name, kwargs, error",
    [
        ("Bad_Name", {"help": "x"}, "lower-case words"),
        ("lora", {"help": "x"}, "already registered"),
        ("fine-name", {"help": ""}, "one-line `help`"),
    ],
)
def test_register_lift_validates(name, kwargs, error):
    with pytest.raises(ValueError, match=error):
        register_lift(name, **kwargs)(Lift)
    assert "fine-name" not in LIFTS


def test_lift_needing_weights_says_so(tmp_path):
    with pytest.raises(ValueError, match=r"needs weights: pass `--lift unet=PATH`"):
        load_lifts(["unet"])
    with pytest.raises(ValueError, match="does not exist"):
        load_lifts([f"unet={tmp_path / 'missing'}"])


def test_keywords_lift_appends_quality_keywords(tmp_path):
    (lift,) = load_lifts(["keywords"])
    assert lift.rewrite_prompts(["two red boats at sunset."]) == ["two red boats at sunset, highly detailed, sharp focus, soft lighting"]
    (lift,) = load_lifts(["keywords"], ["keywords.keywords=8k, , masterpiece"])
    assert lift.rewrite_prompts(["a cat"]) == ["a cat, 8k, masterpiece"] and lift.describe()["keywords"] == "8k, masterpiece"
    with pytest.raises(ValueError, match="takes no PATH"):
        load_lifts([f"keywords={tmp_path}"])
    with pytest.raises(ValueError, match="`keywords` is empty"):
        load_lifts(["keywords"], ["keywords.keywords= , "])


def test_text_encoder_lift_swaps_the_component(tmp_path, tiny_pipeline_dirs):
    base = load_pipeline(tiny_pipeline_dirs["sd1"])
    tuned = load_pipeline(tiny_pipeline_dirs["sd1"]).text_encoder
    with torch.no_grad():
        for p in tuned.parameters():
            p.add_(0.05 * torch.randn_like(p))
    tuned.save_pretrained(tmp_path / "tuned" / "text_encoder")
    lifts = load_lifts([f"text-encoder={tmp_path / 'tuned'}"])  # a pipeline-like folder holding text_encoder/
    lifted = load_pipeline(tiny_pipeline_dirs["sd1"], lifts=lifts)
    a, b = encode_prompts(base, ["a red ball"]), encode_prompts(lifted, ["a red ball"])
    ids = base.tokenizer(["a red ball"], padding="max_length", return_tensors="pt").input_ids
    with torch.no_grad():
        expected = tuned(ids)[0]
    assert not torch.allclose(a.prompt_embeds, b.prompt_embeds)
    torch.testing.assert_close(b.prompt_embeds, expected)


def test_component_lift_rejects_mismatched_sizes(tmp_path, tiny_pipeline_dirs):
    sdxl_unet = load_pipeline(tiny_pipeline_dirs["sdxl"]).unet
    sdxl_unet.save_pretrained(tmp_path / "unet")
    with pytest.raises(ValueError, match="does not fit this pipeline.*cross_attention_dim: pipeline 32 vs lift 64"):
        load_pipeline(tiny_pipeline_dirs["sd1"], lifts=load_lifts([f"unet={tmp_path / 'unet'}"]))


def test_lora_lift_loads_diffusers_lora_weights(tmp_path, arch, tiny_dir):
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    pipe = load_pipeline(tiny_dir)
    base = _images(pipe)
    pipe.unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"], init_lora_weights=False))
    with_adapter = _images(pipe)
    type(pipe).save_lora_weights(tmp_path / "lora", unet_lora_layers=get_peft_model_state_dict(pipe.unet))

    for fuse in (True, False):  # fused into the weights (the default) or kept as LoRA layers: the same images
        lifted = load_pipeline(tiny_dir, lifts=load_lifts([f"lora={tmp_path / 'lora'}"], [f"lora.fuse={fuse}"]))
        out = _images(lifted)
        assert np.abs(out - base).max() > 1e-3
        np.testing.assert_allclose(out, with_adapter, atol=1e-5)
        assert any("lora" in k for k in lifted.unet.state_dict()) is not fuse  # fused: no LoRA layer left to run
    half = load_pipeline(tiny_dir, lifts=load_lifts([f"lora={tmp_path / 'lora'}"], ["lora.scale=0.5"]))
    assert 0 < np.abs(_images(half) - base).max() < np.abs(out - base).max()


def test_edit_prompt_embeds_reaches_the_unet(tiny_pipeline_dirs):
    class ZeroEmbeds(Lift):
        def edit_prompt_embeds(self, pipe, embeds, prompts):
            embeds.prompt_embeds = torch.zeros_like(embeds.prompt_embeds)
            return embeds

    pipe = load_pipeline(tiny_pipeline_dirs["sd1"])
    a = _images(pipe, prompts=("a red ball",), lifts=[ZeroEmbeds("zero")])
    b = _images(pipe, prompts=("two blue boats",), lifts=[ZeroEmbeds("zero")])
    c = _images(pipe, prompts=("a red ball",))
    np.testing.assert_allclose(a, b, atol=1e-6)  # the prompt no longer matters
    assert np.abs(a - c).max() > 1e-4
