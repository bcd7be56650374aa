"""Bring your own model: lifts inside a diffusers pipeline (`promptlift.lift`), single-file checkpoints, trained
outputs that know their base model, and exports other tools load."""

import json

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionPipeline, StableDiffusionXLPipeline
from PIL import Image
from safetensors.torch import save_file

import promptlift
from promptlift.export.checkpoint import ExportCheckpointConfig, export_checkpoint
from promptlift.export.lora import ExportLoraConfig, export_lora
from promptlift.methods.sur_adapter.model import SURAdapter
from promptlift.pipeline import base_model_record, load_pipeline, write_base_model
from promptlift.tiny import save_tiny_pipeline
from helpers import run_cli

PROMPTS = ["two red boats at sunset", "a white ball on the beach"]
STEPS, GUIDANCE = 3, 4.0


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    """{arch: (pipeline folder, {lift: trained folder})}: tiny SD1/SD2/SDXL pipelines (SDXL's second encoder its own
    width, as in SDXL) and, for each, a TextCraftor encoder (hybrid schedule), a SUR-adapter and a quality-tuning LoRA,
    each with the base_model.json a trainer writes."""
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    root = tmp_path_factory.mktemp("own")
    out = {}
    for arch in ("sd1", "sd2", "sdxl"):
        folder = save_tiny_pipeline(arch, root / arch, text_encoder_2_width=48)
        pipe = load_pipeline(folder)
        base = base_model_record(pipe)
        lifts = {name: root / f"{arch}-{name}" for name in ("textcraftor", "textcraftor-all", "sur-adapter",
                                                               "quality-tuning")}
        torch.manual_seed(1)
        encoders = [e for e in ("text_encoder", "text_encoder_2") if getattr(pipe, e, None) is not None]
        for lift, everything in (("textcraftor", False), ("textcraftor-all", True)):
            for encoder in encoders:  # SDXL: both, text_projection included
                tuned = getattr(load_pipeline(folder), encoder)
                with torch.no_grad():
                    for name, p in tuned.named_parameters():  # linear layers' weights (a LoRA carries them), or all
                        if everything or name.endswith("weight") and ("_proj" in name or ".fc" in name):
                            p.add_(0.2 * torch.randn_like(p))
                tuned.save_pretrained(lifts[lift] / encoder)
            (lifts[lift] / "textcraftor.json").write_text(json.dumps({"switch_step": 1}))
        width = pipe.unet.config.cross_attention_dim
        pooled = pipe.text_encoder_2.config.hidden_size if arch == "sdxl" else None
        adapter = SURAdapter(dim=width, llm_dim=12, num_heads=8, pooled_dim=pooled)
        with torch.no_grad():
            adapter.out.weight.normal_(0, 0.5)
        adapter.save_pretrained(lifts["sur-adapter"])
        pipe.unet.add_adapter(LoraConfig(r=4, lora_alpha=8, init_lora_weights="gaussian",
                                         target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
        with torch.no_grad():
            for name, p in pipe.unet.named_parameters():
                if "lora_B" in name:
                    p.normal_(0, 0.3)
        type(pipe).save_lora_weights(lifts["quality-tuning"], unet_lora_layers=get_peft_model_state_dict(pipe.unet),
                                     unet_lora_adapter_metadata={"r": 4, "lora_alpha": 8,
                                                                 "target_modules": ["to_q", "to_k", "to_v", "to_out.0"]})
        for path in lifts.values():
            write_base_model(path, base)
        out[arch] = folder, lifts
    return out


def specs(lifts):
    """Every seam: a rewrite (keywords), a UNet LoRA, an embedding edit and a scheduled encoder swap, in stack order."""
    return ["keywords", f"quality-tuning={lifts['quality-tuning']}", f"sur-adapter={lifts['sur-adapter']}",
            f"textcraftor={lifts['textcraftor']}"]


def generators(n_prompts, seeds):
    return [torch.Generator().manual_seed(s) for _ in range(n_prompts) for s in seeds]


def cli_images(tmp_path, *args):
    result = run_cli("generate", *PROMPTS, "--num_images_per_prompt", 2, "--seed", 5, "--batch_size", 4,
                     "--num_inference_steps", STEPS, "--guidance_scale", GUIDANCE, "--output_dir", tmp_path, *args)
    assert result.exit_code == 0, result.output
    return np.stack([np.asarray(Image.open(p)) for p in sorted(tmp_path.glob("*.png"))])


def as_uint8(images):
    return (images * 255).round().astype("uint8")


@pytest.mark.parametrize("arch", ["sd1", "sd2", "sdxl"])
def test_the_lifted_pipe_call_gives_the_clis_images_and_unlift_gives_the_base_ones(own, arch, tmp_path):
    folder, lifts = own[arch]
    pipe = load_pipeline(folder)
    base = pipe(PROMPTS, num_images_per_prompt=2, generator=generators(2, (5, 6)), num_inference_steps=STEPS,
                guidance_scale=GUIDANCE, output_type="np").images
    assert promptlift.lift(pipe, specs(lifts)) is pipe
    assert type(pipe) is type(load_pipeline(folder))  # no class swap
    steps = []

    def on_step(p, step, timestep, tensors):  # the user's own callback runs beside the lifts' schedule
        steps.append(step)
        return {"latents": tensors["latents"]}

    lifted = pipe(PROMPTS, num_images_per_prompt=2, generator=generators(2, (5, 6)), num_inference_steps=STEPS,
                  guidance_scale=GUIDANCE, output_type="np", callback_on_step_end=on_step).images
    assert steps == list(range(STEPS))
    cli = cli_images(tmp_path, "--model", folder, *[a for s in specs(lifts) for a in ("--lift", s)])
    np.testing.assert_array_equal(as_uint8(lifted), cli)  # bitwise the CLI's images
    assert np.abs(lifted - base).max() > 0.05, "the lifts changed the images"
    sidecar = json.loads(next(tmp_path.glob("000-*seed5.json")).read_text())
    assert sidecar["prompt_used"].startswith(PROMPTS[0] + ", ") and [x["name"] for x in sidecar["lifts"]] == \
        ["keywords", "quality-tuning", "sur-adapter", "textcraftor"]
    promptlift.unlift(pipe)
    again = pipe(PROMPTS, num_images_per_prompt=2, generator=generators(2, (5, 6)), num_inference_steps=STEPS,
                 guidance_scale=GUIDANCE, output_type="np").images
    np.testing.assert_array_equal(again, base)  # the fused LoRA's weights and the swapped encoder are back


def test_the_whole_stack_through_pipe_call_gives_the_clis_images(tmp_path):
    pipe = promptlift.load_pipeline()
    promptlift.lift(pipe, lifted=True)
    assert list(promptlift.get_lifts(pipe)) == ["refiner", "quality-tuning", "sur-adapter", "textcraftor"]
    images = pipe(PROMPTS, num_images_per_prompt=2, generator=generators(2, (5, 6)), num_inference_steps=STEPS,
                  guidance_scale=GUIDANCE, output_type="np").images
    np.testing.assert_array_equal(as_uint8(images), cli_images(tmp_path, "--lifted"))


def test_a_single_file_loads_in_diffusers_and_in_promptlift_with_the_lifted_image(own, arch, tmp_path):
    """`export checkpoint` merges the quality-tuning LoRA and TextCraftor's encoder; the file loads offline through
    diffusers' `from_single_file` and promptlift's `--model`, both giving the lifted pipeline's image."""
    folder, lifts = own[arch]
    merged = [f"quality-tuning={lifts['quality-tuning']}", f"textcraftor={lifts['textcraftor']}"]
    output = tmp_path / "model.safetensors"
    export_checkpoint(ExportCheckpointConfig(output=output, model=str(folder), lift=merged, dtype="float32",
                                             lift_option=["textcraftor.switch_step=0"]))
    assert "merged into its weights" in output.with_suffix(".md").read_text()
    lifted = promptlift.lift(load_pipeline(folder), merged, ["textcraftor.switch_step=0", "quality-tuning.fuse=true"])
    kwargs = dict(num_inference_steps=STEPS, guidance_scale=GUIDANCE, output_type="np")
    want = lifted(PROMPTS[:1], generator=generators(1, (5,)), **kwargs).images
    cls = StableDiffusionXLPipeline if arch == "sdxl" else StableDiffusionPipeline
    single = cls.from_single_file(str(output), config=str(folder), local_files_only=True)
    np.testing.assert_array_equal(single(PROMPTS[:1], generator=generators(1, (5,)), **kwargs).images, want)
    ours = load_pipeline(output, config=folder)
    np.testing.assert_array_equal(ours(PROMPTS[:1], generator=generators(1, (5,)), **kwargs).images, want)


def lora_layers(pipe) -> int:
    """How many layers of the pipeline's models got LoRA weights."""
    models = [getattr(pipe, n) for n in ("unet", "text_encoder", "text_encoder_2") if getattr(pipe, n, None) is not None]
    return sum(hasattr(m, "lora_A") and len(m.lora_A) > 0 for model in models for m in model.modules())


def test_kohya_lora_files_load_in_diffusers_with_the_lifts_image(own, arch, tmp_path):
    """The quality-tuning LoRA and TextCraftor's full encoders (extracted by SVD; on SDXL both, text_projection
    included) as kohya files, read back through diffusers' own `load_lora_weights` (which converts kohya keys): every
    layer of the file loads, and the image is the promptlift lift's within 1/255. SDXL's UNet keys are named by the
    original blocks, as kohya's SDXL files are; the metadata carries kohya's fields."""
    from safetensors import safe_open

    folder, lifts = own[arch]
    kwargs = dict(num_inference_steps=STEPS, guidance_scale=GUIDANCE, output_type="np")
    for name, options in (("quality-tuning", []), ("textcraftor", ["textcraftor.switch_step=0"])):
        output = tmp_path / f"{name}.safetensors"
        path, note = export_lora(ExportLoraConfig(source=lifts[name], output=output, rank=64))
        assert "100.0 % of the whole change" in note or name == "quality-tuning", note
        assert "<lora:" in output.with_suffix(".md").read_text()
        with safe_open(str(output), "pt") as f:
            keys, metadata = list(f.keys()), f.metadata()
        assert metadata["ss_network_alpha"] and metadata["ss_network_dim"] and metadata["ss_network_module"] == "networks.lora"
        if arch == "sdxl" and name == "quality-tuning":
            assert all(k.startswith(("lora_unet_input_blocks_", "lora_unet_middle_block_", "lora_unet_output_blocks_"))
                       for k in keys), keys[:3]
        if arch == "sdxl" and name == "textcraftor":
            assert "lora_te2_text_projection.lora_down.weight" in keys
        lifted = promptlift.lift(load_pipeline(folder), [f"{name}={lifts[name]}"], options)
        want = lifted(PROMPTS[:1], generator=generators(1, (5,)), **kwargs).images
        plain = load_pipeline(folder)
        plain.load_lora_weights(str(output))
        assert lora_layers(plain) == sum(k.endswith("lora_down.weight") for k in keys), "a key of the file did not load"
        got = plain(PROMPTS[:1], generator=generators(1, (5,)), **kwargs).images
        assert np.abs(got - want).max() <= 1 / 255, name
        assert np.abs(got - load_pipeline(folder)(PROMPTS[:1], generator=generators(1, (5,)), **kwargs).images).max() > 0.02


def test_a_lossy_lora_export_says_what_it_drops_and_names_the_lossless_route(own, tmp_path):
    """TextCraftor's encoder tuned in every weight (embeddings, biases, LayerNorms): the LoRA carries the linear
    layers only; the note gives the share of the whole change kept and the image difference measured, and a warning
    above 1/255 names `export checkpoint`, whose file is the lift's."""
    folder, lifts = own["sd1"]
    with pytest.warns(UserWarning, match="more than 1/255.*promptlift export checkpoint OUT --model BASE --lift textcraftor="):
        _, note = export_lora(ExportLoraConfig(source=lifts["textcraftor-all"], output=tmp_path / "tc.safetensors",
                                               check_steps=STEPS))
    kept = float(note.split("keeps ")[1].split(" %")[0])
    assert 0 < kept < 100 and "100.0 % of the linear layers'" in note, note
    worst = float(note.split("up to ")[1].split("/255")[0])
    assert worst > 1, note


def test_a_checkpoint_export_keeps_the_dtype_of_the_file_it_overwrites(own, tmp_path):
    from promptlift.export.checkpoint import safetensors_dtype

    folder, _ = own["sd1"]
    output = tmp_path / "model.safetensors"
    export_checkpoint(ExportCheckpointConfig(output=output, model=str(folder), dtype="float32"))
    cfg = ExportCheckpointConfig(output=output, model=str(folder), overwrite=True)
    assert cfg.dtype == "float32"
    export_checkpoint(cfg)
    assert safetensors_dtype(output) == "float32"
    with pytest.warns(UserWarning, match="holds float32 weights; it is rewritten as float16, as --dtype asks"):
        ExportCheckpointConfig(output=output, model=str(folder), overwrite=True, dtype="float16")


def test_scheduler_variant_and_offload_options(own, tmp_path):
    folder, _ = own["sd1"]
    pipe = load_pipeline(folder, scheduler="EulerDiscreteScheduler")
    assert type(pipe.scheduler).__name__ == "EulerDiscreteScheduler"
    with pytest.raises(ValueError, match="'NoSuchScheduler' is not a diffusers scheduler; choose one of: .*DDIMScheduler"):
        load_pipeline(folder, scheduler="NoSuchScheduler")
    with pytest.raises(ValueError, match="`cpu_offload` moves each model to the GPU"):
        load_pipeline(folder, cpu_offload=True, device="cpu")
    pipe.save_pretrained(tmp_path / "fp16", variant="fp16")
    assert type(load_pipeline(tmp_path / "fp16", variant="fp16").scheduler).__name__ == "EulerDiscreteScheduler"
    result = run_cli("generate", "a red ball", "--model", folder, "--scheduler", "DPMSolverMultistepScheduler",
                     "--num_inference_steps", 2, "--output_dir", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert json.loads(next((tmp_path / "out").glob("*.json")).read_text())["scheduler"] == "DPMSolverMultistepScheduler"


# -- bad input: one line naming the input and the fix, nothing half-written --------------------------------------------


def test_a_file_that_is_no_checkpoint_or_of_another_architecture_is_refused(own, tmp_path):
    folder, _ = own["sd1"]
    save_file({"weight": torch.zeros(2)}, tmp_path / "lora.safetensors")
    with pytest.raises(ValueError, match="holds no Stable Diffusion UNet"):
        load_pipeline(tmp_path / "lora.safetensors", config=folder)
    export_checkpoint(ExportCheckpointConfig(output=tmp_path / "sd1.safetensors", model=str(folder)))
    with pytest.raises(ValueError, match="is a StableDiffusionPipeline with cross-attention width 32, but `model_config` "
                                         ".* describes a StableDiffusionXLPipeline with 80"):
        load_pipeline(tmp_path / "sd1.safetensors", config=own["sdxl"][0])
    result = run_cli("generate", "a red ball", "--model", tmp_path / "sd1.safetensors", "--output_dir", tmp_path / "o")
    assert result.exit_code != 0 and "--model_config DIR" in result.output and not list((tmp_path / "o").glob("**/*.*"))


def test_a_lift_for_another_model_is_refused_before_any_work(own, tmp_path):
    sd1, lifts = own["sd1"]
    pipe = load_pipeline(own["sdxl"][0])
    with pytest.raises(ValueError, match=r"was trained on .*sd1 \(StableDiffusionPipeline, text width \[32\], "
                                         r"cross-attention 32\), not on this .*sdxl .*promptlift train sur-adapter --model"):
        promptlift.lift(pipe, [f"sur-adapter={lifts['sur-adapter']}"])
    assert not promptlift.get_lifts(pipe) and type(pipe) is StableDiffusionXLPipeline
    for spec in (["quality-tuning"], ["refiner"]):  # the bundle's weights are the embedded model's
        with pytest.raises(ValueError, match=f"train it: promptlift train {spec[0]} --model"):
            promptlift.lift(load_pipeline(sd1), spec)
    with pytest.raises(ValueError, match="train it: promptlift train refiner --model"):
        promptlift.lift(load_pipeline(sd1), lifted=True)
    result = run_cli("generate", "a red ball", "--model", sd1, "--lifted", "--output_dir", tmp_path / "o")
    assert result.exit_code != 0 and "train it: promptlift train" in result.output and not list((tmp_path / "o").glob("**/*.*"))


def test_lift_twice_unlift_without_lifts_embeddings_and_unsupported_pipelines_are_refused(own):
    folder, lifts = own["sd1"]
    pipe = promptlift.lift(load_pipeline(folder), ["keywords"])
    with pytest.raises(ValueError, match=r"already lifted \(keywords\); call `promptlift.unlift\(pipe\)` first"):
        promptlift.lift(pipe, ["keywords"])
    with pytest.raises(ValueError, match=r"lift 'keywords' \(keywords\) rewrites the prompt's text, so the pipeline "
                                         r"cannot take `prompt_embeds`"):
        pipe(prompt_embeds=torch.zeros(1, 77, 32), num_inference_steps=1)
    promptlift.unlift(pipe)
    with pytest.raises(ValueError, match="has no lifts to remove"):
        promptlift.unlift(pipe)
    with pytest.raises(ValueError, match="reversible=False"):
        promptlift.unlift(promptlift.lift(load_pipeline(folder), ["keywords"], reversible=False))
    img2img = StableDiffusionImg2ImgPipeline(**load_pipeline(folder).components)
    with pytest.raises(TypeError, match="is a StableDiffusionImg2ImgPipeline; promptlift lifts text-to-image pipelines"):
        promptlift.lift(img2img, ["keywords"])


def test_an_export_target_that_exists_is_refused_and_kept(own, tmp_path):
    folder, lifts = own["sd1"]
    target = tmp_path / "x.safetensors"
    target.write_bytes(b"keep")
    for args in (("export", "checkpoint", target, "--model", folder),
                 ("export", "lora", lifts["quality-tuning"], "--output", target)):
        result = run_cli(*args)
        assert result.exit_code != 0 and "exists; pass another path, or --overwrite" in result.output
        assert target.read_bytes() == b"keep"
    result = run_cli("export", "checkpoint", tmp_path / "y.safetensors", "--model", folder, "--lift", "keywords")
    assert result.exit_code != 0 and "acts when images are generated" in result.output
    assert list(tmp_path.iterdir()) == [target]


def test_a_lift_that_fails_half_way_leaves_the_pipeline_as_it_was(own, tmp_path):
    folder, lifts = own["sd1"]
    load_pipeline(own["sdxl"][0]).text_encoder_2.save_pretrained(tmp_path / "bad" / "text_encoder")  # another width
    pipe = load_pipeline(folder)
    kwargs = dict(num_inference_steps=STEPS, guidance_scale=GUIDANCE, output_type="np")
    base = pipe(PROMPTS[:1], generator=generators(1, (5,)), **kwargs).images
    with pytest.raises(ValueError, match="do not match CLIPTextModel"):
        promptlift.lift(pipe, [f"quality-tuning={lifts['quality-tuning']}", f"textcraftor={tmp_path / 'bad'}"])
    assert type(pipe) is StableDiffusionPipeline and not promptlift.get_lifts(pipe)
    np.testing.assert_array_equal(pipe(PROMPTS[:1], generator=generators(1, (5,)), **kwargs).images, base)


def test_duplicate_prompt_ids_are_refused_naming_both_lines(tmp_path):
    from promptlift.data.prompt_sets import load_prompt_set

    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "a", "prompt": "a red ball"}\n\n{"id": "b", "prompt": "two boats"}\n{"id": "a", "prompt": "x"}\n')
    with pytest.raises(ValueError, match=r"line 4 has the id 'a' of line 1; give each prompt its own id"):
        load_prompt_set(str(path))
    result = run_cli("eval", "--prompts", path, "--output_dir", tmp_path / "run")
    assert result.exit_code != 0 and "line 4 has the id 'a'" in result.output and not (tmp_path / "run" / "scores.jsonl").exists()
    (tmp_path / "p.txt").write_text("a red ball\n\ntwo boats\n")
    assert [r["prompt"] for r in load_prompt_set(str(tmp_path / "p.txt"))] == ["a red ball", "two boats"]


def test_a_run_folder_in_use_by_another_process_is_refused_and_freed_when_it_dies(tmp_path):
    import subprocess
    import sys

    from promptlift.runs import RunLock

    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from promptlift.runs import RunLock; "
                               f"RunLock({str(tmp_path)!r}); print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ValueError, match=rf"is in use by another process \(pid {holder.pid}\); wait for it"):
            RunLock(tmp_path)
        result = run_cli("eval", "--prompts", "world-literal", "--num_prompts", 1, "--output_dir", tmp_path)
        assert result.exit_code != 0 and "in use by another process" in result.output
    finally:
        holder.kill()
        holder.wait()
    with RunLock(tmp_path):  # the killed process left nothing stuck
        assert RunLock(tmp_path).file is None  # this process may take its own folder again


def test_the_base_models_held_out_scores_are_made_once_for_runs_of_one_model(tiny_pipeline_dirs, tiny_bundle_dir,
                                                                              monkeypatch, tmp_path):
    from promptlift.methods.heldout import HeldOutEvaluator

    monkeypatch.setenv("PROMPTLIFT_CACHE", str(tmp_path))
    pipe = load_pipeline(tiny_pipeline_dirs["sd1"])
    options = [f"world-aesthetic.bundle_dir={tiny_bundle_dir}"]

    def evaluator(steps=2):
        return HeldOutEvaluator(pipe, "literal", 2, "world-aesthetic", options, tiny_bundle_dir, num_inference_steps=steps)

    first, made, images = evaluator(), [], HeldOutEvaluator.images
    monkeypatch.setattr(HeldOutEvaluator, "images", lambda self, lifts: made.append(lifts) or images(self, lifts))
    assert evaluator().base == first.base and made == []  # the second run reads the first's
    assert evaluator(steps=3).base != first.base and made == [[]]  # other settings: made anew
    with torch.no_grad():
        pipe.unet.conv_out.bias.add_(1.0)  # another model: made anew
    evaluator()
    assert made == [[], []]
