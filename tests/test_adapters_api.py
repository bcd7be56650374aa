"""Lifts as diffusers users handle adapters: `lift_config.json` folders saved and loaded by folder or Hub repo id,
`load_lift` / `set_lifts` / `disable_lifts` / `unload_lifts` on the pipeline the user loaded (no class swap), SDXL's
`prompt_2`, several LoRAs at diffusers' `set_adapters` weights, and bad input named."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionXLPipeline

import promptlift
from promptlift.pipeline import load_pipeline
from promptlift.pipeline.lift_config import LIFT_CONFIG_FILE
from helpers import run_cli
from test_own_model import GUIDANCE, PROMPTS, STEPS, as_uint8, cli_images, generators, own  # noqa: F401 (fixture)

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def seed_hub_cache(cache, repo_id, folder):
    """Lay `folder` out in a huggingface_hub cache as the snapshot of `repo_id` at `main` (what a download leaves)."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(folder, repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    return cache


def images(pipe, **kwargs):
    return pipe(PROMPTS, num_images_per_prompt=2, generator=generators(2, (5, 6)), num_inference_steps=STEPS,
                guidance_scale=GUIDANCE, output_type="np", **kwargs).images


@pytest.fixture(scope="module")
def saved(own, tmp_path_factory):
    """{arch: {lift: folder}}: each of `own`'s trained folders (written before lift_config.json) read with
    `Lift.from_pretrained` and written back with `save_pretrained`."""
    root = tmp_path_factory.mktemp("saved")
    return {arch: {name: promptlift.Lift.from_pretrained(path).save_pretrained(root / arch / name)
                   for name, path in lifts.items()} for arch, (_, lifts) in own.items()}


@pytest.mark.parametrize("arch", ["sd1", "sd2", "sdxl"])
def test_a_saved_lift_loads_by_folder_and_by_hub_id_with_the_clis_images(own, saved, arch, tmp_path):
    import huggingface_hub

    assert huggingface_hub.constants.HF_HUB_OFFLINE, "the Hub ids below must come from the seeded cache alone"
    folder, lifts = own[arch]
    config = json.loads((saved[arch]["textcraftor"] / LIFT_CONFIG_FILE).read_text())
    assert config["lift_type"] == "textcraftor" and config["format_version"] == 1
    assert config["options"] == {"alpha": 1.0, "switch_step": 1} and config["base_model"]["cross_attention_dim"]
    assert (saved[arch]["textcraftor"] / "README.md").is_file()
    cache = tmp_path / "hub"
    for name in ("quality-tuning", "textcraftor"):
        seed_hub_cache(cache, f"promptlift-test/{arch}-{name}", saved[arch][name])
    pipe = load_pipeline(folder)
    cls = type(pipe)
    base = images(pipe)
    promptlift.load_lift(pipe, "keywords")
    promptlift.load_lift(pipe, f"promptlift-test/{arch}-quality-tuning", cache_dir=cache, adapter_name="qt")
    promptlift.load_lift(pipe, saved[arch]["sur-adapter"], adapter_name="sur")
    promptlift.load_lift(pipe, f"promptlift-test/{arch}-textcraftor", cache_dir=cache, revision="main")
    assert type(pipe) is cls and promptlift.get_lifts(pipe) == {"keywords": 1, "qt": 1, "sur": 1, "textcraftor": 1}
    lifted = images(pipe)
    specs = ["keywords", f"quality-tuning={lifts['quality-tuning']}", f"sur-adapter={lifts['sur-adapter']}",
             f"textcraftor={lifts['textcraftor']}"]  # the folders as trained, through the CLI's strings
    np.testing.assert_array_equal(as_uint8(lifted), cli_images(tmp_path / "cli", "--model", folder,
                                                               *[a for s in specs for a in ("--lift", s)]))
    assert np.abs(lifted - base).max() > 0.05
    with promptlift.disable_lifts(pipe):
        np.testing.assert_array_equal(images(pipe), base)
    np.testing.assert_array_equal(images(pipe), lifted)  # back on after the block
    promptlift.unload_lifts(pipe, ["textcraftor"])
    assert list(promptlift.get_lifts(pipe)) == ["keywords", "qt", "sur"]
    promptlift.unload_lifts(pipe)
    assert type(pipe) is cls and "encode_prompt" not in vars(pipe) and not any(pipe.get_list_adapters().values())
    np.testing.assert_array_equal(images(pipe), base)


def test_sdxl_prompt_2_goes_through_the_lifts_as_the_clis(own, tmp_path):
    folder, lifts = own["sdxl"]
    specs = ["keywords", f"sur-adapter={lifts['sur-adapter']}", f"textcraftor={lifts['textcraftor']}"]
    pipe = promptlift.lift(load_pipeline(folder), specs)
    second = "a green tree in the snow"
    lifted = images(pipe, prompt_2=second, negative_prompt_2="blurry")
    assert np.abs(lifted - images(pipe)).max() > 0.02, "prompt_2 reaches the second encoder"
    cli = cli_images(tmp_path, "--model", folder, "--prompt_2", second, "--negative_prompt_2", "blurry",
                     *[a for s in specs for a in ("--lift", s)])
    np.testing.assert_array_equal(as_uint8(lifted), cli)
    assert json.loads(next(tmp_path.glob("*.json")).read_text())["prompt_2"] == second
    result = run_cli("generate", "a red ball", "--model", own["sd1"][0], "--prompt_2", second,
                     "--output_dir", tmp_path / "sd1")
    assert result.exit_code != 0 and "`--prompt_2` is for SDXL's second text encoder" in result.output


def test_given_prompt_embeds_pass_through_the_embedding_lifts(own):
    """`prompt_embeds` from the lifted pipeline's own `encode_prompt` give the lifted image; the user's embeddings
    reach the UNet as given."""
    folder, lifts = own["sd1"]
    pipe = load_pipeline(folder)
    promptlift.load_lift(pipe, lifts["sur-adapter"])
    promptlift.load_lift(pipe, lifts["textcraftor"], switch_step=0, alpha=0.5)
    want = images(pipe)
    embeds, negative = pipe.encode_prompt(PROMPTS, "cpu", 1, True)
    given = pipe(prompt_embeds=embeds, negative_prompt_embeds=negative, num_images_per_prompt=2,
                 generator=generators(2, (5, 6)), num_inference_steps=STEPS, guidance_scale=GUIDANCE, output_type="np")
    np.testing.assert_array_equal(given.images, want)
    with promptlift.disable_lifts(pipe):
        plain, _ = pipe.encode_prompt(PROMPTS, "cpu", 1, True)
    assert (plain - embeds).abs().max() > 1e-3, "the lifts edit what the pipeline's encode_prompt gives"


def test_two_lora_lifts_at_weights_equal_diffusers_set_adapters(own, tmp_path):
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    folder, lifts = own["sd1"]
    other = load_pipeline(folder)  # a second LoRA, on other layers, saved as one file
    other.unet.add_adapter(LoraConfig(r=2, lora_alpha=2, init_lora_weights="gaussian", target_modules=["to_q", "proj_in"]))
    with torch.no_grad():
        for name, p in other.unet.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.3)
    type(other).save_lora_weights(tmp_path / "b", unet_lora_layers=get_peft_model_state_dict(other.unet))
    b_file = tmp_path / "b" / "pytorch_lora_weights.safetensors"
    plain = load_pipeline(folder)
    plain.load_lora_weights(str(lifts["quality-tuning"]), adapter_name="a")
    plain.load_lora_weights(str(b_file), adapter_name="b")
    plain.set_adapters(["a", "b"], adapter_weights=[1.0, 0.5])
    want = images(plain)
    pipe = load_pipeline(folder)
    base = images(pipe)
    promptlift.load_lift(pipe, lifts["quality-tuning"], adapter_name="a")
    promptlift.load_lift(pipe, b_file, adapter_name="b")  # a LoRA file is a `lora` lift
    promptlift.set_lifts(pipe, ["a", "b"], weights=[1.0, 0.5])
    assert pipe.get_active_adapters() == ["a", "b"]
    np.testing.assert_array_equal(images(pipe), want)
    promptlift.set_lifts(pipe, ["b"], weights=0.5)  # "a" off: diffusers' own result with "b" alone
    plain.set_adapters(["b"], adapter_weights=[0.5])
    np.testing.assert_array_equal(images(pipe), images(plain))
    with promptlift.disable_lifts(pipe):
        np.testing.assert_array_equal(images(pipe), base)
    promptlift.unload_lifts(pipe)
    assert not any(pipe.get_list_adapters().values())
    np.testing.assert_array_equal(images(pipe), base)


def test_a_fused_lora_switches_off_to_the_base_weights_and_takes_no_weight(own):
    folder, lifts = own["sd1"]
    pipe = load_pipeline(folder)
    base = images(pipe)
    promptlift.load_lift(pipe, lifts["quality-tuning"], fuse=True)
    assert not any(pipe.get_list_adapters().values()), "fused: no LoRA layer is left"
    with promptlift.disable_lifts(pipe):
        np.testing.assert_array_equal(images(pipe), base)
    with pytest.raises(ValueError, match="is a LoRA fused into the weights at scale 1; its weight is 1 .* fuse=False"):
        promptlift.set_lifts(pipe, ["quality-tuning"], [0.5])
    promptlift.unload_lifts(pipe)
    np.testing.assert_array_equal(images(pipe), base)


def test_push_to_hub_uploads_the_lift_folder_with_its_config_and_card(saved, monkeypatch):
    from huggingface_hub import HfApi

    calls = {}

    def create_repo(self, repo_id, **kwargs):
        calls["repo"] = repo_id, kwargs.get("private")

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        calls["files"] = sorted(str(p.relative_to(folder_path)) for p in Path(folder_path).rglob("*") if p.is_file())
        calls["config"] = json.loads((Path(folder_path) / LIFT_CONFIG_FILE).read_text())
        return "https://huggingface.co/user/sur/commit/1"

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    lift = promptlift.Lift.from_pretrained(saved["sd1"]["sur-adapter"])
    assert lift.push_to_hub("user/sur", private=True) == "https://huggingface.co/user/sur/commit/1"
    assert calls["repo"] == ("user/sur", True)
    assert {"README.md", LIFT_CONFIG_FILE, "model.safetensors", "config.json"} <= set(calls["files"])
    assert calls["config"]["lift_type"] == "sur-adapter" and calls["config"]["base_model"]["text_embedding_dims"] == [32]


# -- bad input: one line naming the input and the fix, nothing changed ----------------------------------------------


def test_bad_lift_sources_options_and_names_are_refused_and_leave_the_pipeline_as_it_was(own, saved, tmp_path):
    folder, lifts = own["sd1"]
    pipe = load_pipeline(folder)
    promptlift.load_lift(pipe, saved["sd1"]["sur-adapter"], adapter_name="sur")
    before = dict(pipe.components)
    cases = [
        (dict(source="nobody/no-such-lift"), "is not in the Hugging Face cache, and the Hub cannot be reached"),
        (dict(source=tmp_path), "holds no lift_config.json and is no older lift layout"),
        (dict(source=saved["sd1"]["textcraftor"], alpah=0.5), "lift 'textcraftor' has no option 'alpah'; its options: "
                                                              "alpha, switch_step"),
        (dict(source=saved["sd1"]["quality-tuning"], adapter_name="sur"), "already has a lift named 'sur'"),
        (dict(source=saved["sdxl"]["sur-adapter"]), r"was trained on .*sdxl \(StableDiffusionXLPipeline, text width "
                                                     r"\[32, 48\], cross-attention 80\), not on this"),
    ]
    (tmp_path / "notes.txt").write_text("not a lift")
    for kwargs, message in cases:
        source = kwargs.pop("source")
        with pytest.raises(ValueError, match=message):
            promptlift.load_lift(pipe, source, **kwargs)
        assert list(promptlift.get_lifts(pipe)) == ["sur"] and dict(pipe.components) == before
    with pytest.raises(ValueError, match=r"`set_lifts`: no lift named 'tc' is loaded; loaded: 'sur'"):
        promptlift.set_lifts(pipe, ["tc"])
    with pytest.raises(ValueError, match="`unload_lifts`: no lift named 'tc'"):
        promptlift.unload_lifts(pipe, "tc")
    assert promptlift.get_lifts(pipe) == {"sur": 1.0}


def test_a_lift_for_sd1_is_refused_on_sdxl_by_type_when_the_widths_fit(own, saved, tmp_path):
    """A record whose widths match the SDXL pipeline's but whose pipeline class is SD 1.x's is still refused."""
    sdxl = load_pipeline(own["sdxl"][0])
    folder = tmp_path / "sur"
    shutil.copytree(saved["sdxl"]["sur-adapter"], folder)
    config = json.loads((folder / LIFT_CONFIG_FILE).read_text())
    config["base_model"]["pipeline_class"] = "StableDiffusionPipeline"
    (folder / LIFT_CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"was trained on .* \(StableDiffusionPipeline, .*not on this .*"
                                         r"\(StableDiffusionXLPipeline"):
        promptlift.load_lift(sdxl, folder)
    assert not promptlift.get_lifts(sdxl) and type(sdxl) is StableDiffusionXLPipeline


def test_an_older_lift_folder_loads_as_it_is_and_converts_once(own, tmp_path):
    folder = tmp_path / "tc"
    shutil.copytree(own["sd1"][1]["textcraftor"], folder)
    assert promptlift.Lift.from_pretrained(folder).switch_step == 1  # textcraftor.json's default, read as it is
    result = run_cli("convert-lift", folder)
    assert result.exit_code == 0, result.output
    config = json.loads((folder / LIFT_CONFIG_FILE).read_text())
    assert config["lift_type"] == "textcraftor" and config["options"]["switch_step"] == 1
    assert config["base_model"]["pipeline_class"] == "StableDiffusionPipeline"


def test_a_single_file_is_named_by_its_file_and_fingerprint_and_never_as_the_embedded_model(own, tmp_path, monkeypatch):
    from diffusers import StableDiffusionPipeline

    from promptlift.export.checkpoint import ExportCheckpointConfig, export_checkpoint
    from promptlift.pipeline import base_model_record

    folder, _ = own["sd1"]
    single = export_checkpoint(ExportCheckpointConfig(output=tmp_path / "mine.safetensors", model=str(folder)))
    pipe = load_pipeline(single, config=folder)
    record = base_model_record(pipe)
    assert record["pretrained_model_name_or_path"] == str(single.resolve()) and len(record["file_fingerprint"]) == 16
    result = run_cli("generate", "a red ball", "--model", single, "--model_config", folder, "--num_inference_steps", 1,
                     "--output_dir", tmp_path / "out")
    assert result.exit_code == 0, result.output
    sidecar = json.loads(next((tmp_path / "out").glob("*.json")).read_text())
    assert sidecar["model"] == f"mine.safetensors (file fingerprint {record['file_fingerprint']})"
    # the bundle's weights are the embedded model's: refused on a single file, loaded by promptlift or by diffusers
    plain = StableDiffusionPipeline.from_single_file(str(single), config=str(folder), local_files_only=True)
    for each in (pipe, plain):
        with pytest.raises(ValueError, match="takes the bundle's weights, which are the embedded model's, not .*"
                                             "train it: promptlift train textcraftor --model"):
            promptlift.load_lift(each, "textcraftor")
    # offline without HF_HUB_OFFLINE: diffusers' connection error becomes the --model_config advice
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    class ConnectError(Exception):
        pass

    def unreachable(*args, **kwargs):
        raise OSError("could not fetch the config") from ConnectError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(StableDiffusionPipeline, "from_single_file", unreachable)
    monkeypatch.setattr("promptlift.pipeline.loading._offline", lambda: False)
    with pytest.raises(ValueError, match="the hub cannot be reached; pass `--model_config DIR`"):
        load_pipeline(single)


def test_export_lora_names_the_record_when_its_base_model_is_gone(saved, tmp_path):
    folder = tmp_path / "tc"
    shutil.copytree(saved["sd1"]["textcraftor"], folder)
    config = json.loads((folder / LIFT_CONFIG_FILE).read_text())
    config["base_model"]["pretrained_model_name_or_path"] = "relative/model-that-moved"
    (folder / LIFT_CONFIG_FILE).write_text(json.dumps(config))
    result = run_cli("export", "lora", folder, "--output", tmp_path / "tc.safetensors")
    assert result.exit_code != 0
    assert f"the base model 'relative/model-that-moved' that {folder / LIFT_CONFIG_FILE} names could not be loaded" \
        in result.output and "pass --model" in result.output
    assert not (tmp_path / "tc.safetensors").exists()


def test_the_clis_tiny_sdxl_loads_back_from_a_single_file_and_an_unloadable_one_is_not_written(tmp_path):
    for args in (("--output_dir", tmp_path / "xl"), ("--output_dir", tmp_path / "xl32", "--text_encoder_2_width", 32)):
        assert run_cli("tiny-pipeline", "--arch", "sdxl", *args).exit_code == 0
    assert run_cli("export", "checkpoint", tmp_path / "xl.safetensors", "--model", tmp_path / "xl").exit_code == 0
    pipe = load_pipeline(tmp_path / "xl.safetensors", config=tmp_path / "xl")
    assert type(pipe) is StableDiffusionXLPipeline and pipe.text_encoder_2.config.hidden_size == 48
    result = run_cli("export", "checkpoint", tmp_path / "xl32.safetensors", "--model", tmp_path / "xl32")
    assert result.exit_code != 0 and "both 32 wide, so a single file of it cannot be loaded back" in result.output
    assert not (tmp_path / "xl32.safetensors").exists()
