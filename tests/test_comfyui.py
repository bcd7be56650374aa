"""The ComfyUI node pack against ComfyUI's own engine (ComfyUI 0.3.64 from ../shared/peers/comfyui, unchanged, copied to
a temporary folder): it starts with the pack and no import failure; its nodes' conditioning equals promptlift's own
encoding of the same prompt; the refine node writes what `promptlift refine` writes; a workflow posted to ComfyUI's
HTTP server runs end to end and saves an image; bad input fails in the node with the fix named, and writes nothing.

ComfyUI detects real-size architectures only: the checkpoint is a random full-size SD 1.5 (`promptlift export
checkpoint`), with ComfyUI's own CLIP tokenizer, run at 64 px for 2 steps. ComfyUI's engine needs torchvision, which
needs the torch build it was made for: `make comfyui` sets up .venv-comfyui (torch 2.14.1, torchvision 0.29.1,
ComfyUI's requirements and promptlift), and `make test` does when ComfyUI's source is there; PROMPTLIFT_COMFYUI_PYTHON
names another Python. Without either they are skipped. Marked `comfyui` and left out of a plain `pytest` run: `make test`
runs them after the rest, alone (`pytest -m comfyui tests/test_comfyui.py`, about 5 min; ComfyUI's processes need the
memory the other tests' workers would hold).
"""

import gc
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
COMFYUI = ROOT.parent / "shared" / "peers" / "comfyui"
PYTHON = Path(os.environ.get("PROMPTLIFT_COMFYUI_PYTHON", ROOT / ".venv-comfyui" / "bin" / "python"))
CACHE = ROOT / ".cache" / "comfyui-test"
PROMPT = "a couple of boats as the sun goes down"
CHECKPOINT = "sd15-random.safetensors"
COMFY_ARGS = ("--bf16-unet",)  # the UNet in half the memory: ComfyUI's processes run beside the tests' own

pytestmark = [pytest.mark.comfyui,
              pytest.mark.skipif(not (COMFYUI / "main.py").is_file(), reason=f"ComfyUI's source is not at {COMFYUI}"),
              pytest.mark.skipif(not PYTHON.is_file(), reason=f"no Python for ComfyUI at {PYTHON}: run `make comfyui`")]


def release() -> None:
    """Give freed memory back to the system (glibc keeps freed heap otherwise): ComfyUI's processes run beside this one."""
    import ctypes

    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)


def comfy_env() -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}


@pytest.fixture(scope="module")
def sd15():
    """A random full-size SD 1.5 diffusers folder with ComfyUI's CLIP tokenizer (the two tokenize alike), kept in
    .cache/comfyui-test between runs."""
    from promptlift.hardware.calibrate import build_pipeline
    from transformers import CLIPTokenizer

    folder = CACHE / "sd15"
    if not (folder / "tokenizer" / "merges.txt").is_file():
        build_pipeline("sd15", folder)
        tokenizer = CLIPTokenizer.from_pretrained(COMFYUI / "comfy" / "sd1_tokenizer", model_max_length=77)
        shutil.rmtree(folder / "tokenizer", ignore_errors=True)
        tokenizer.save_pretrained(folder / "tokenizer")
    return folder


@pytest.fixture(scope="module")
def pipe(sd15):
    """The checkpoint's diffusers pipeline for its text path: the UNet and VAE (3.7 GB in fp32) are moved to the meta
    device, keeping their configs (what the lifts' checks read), while ComfyUI's processes run beside this one."""
    from promptlift import load_pipeline

    pipe = load_pipeline(str(sd15), dtype="float32")
    pipe.unet.to("meta")
    pipe.vae.to("meta")
    release()
    return pipe


@pytest.fixture(scope="module")
def lifts(pipe, sd15, tmp_path_factory):
    """{name: folder}: a SUR-adapter and a TextCraftor encoder with random weights for this model (each with its
    lift_config.json), and the bundle's LM refiner (it writes text: any model's)."""
    from promptlift.methods import bundle_lift
    from promptlift.methods.sur_adapter.model import SURAdapter
    from promptlift.pipeline import base_model_record
    from promptlift.pipeline.lift_config import write_lift_config

    root = tmp_path_factory.mktemp("lifts")
    record = base_model_record(pipe, str(sd15))
    torch.manual_seed(0)
    adapter = SURAdapter(768, 384, num_layers=1, num_heads=8)
    torch.nn.init.normal_(adapter.out.weight, std=0.02)  # zero-initialised: a trained adapter changes the embedding
    adapter.save_pretrained(root / "sur")
    write_lift_config(root / "sur", "sur-adapter", record, {"gate": "none"})
    tuned = pipe.text_encoder.__class__(pipe.text_encoder.config)
    tuned.load_state_dict({k: v + 0.01 * torch.randn_like(v) if v.is_floating_point() else v
                           for k, v in pipe.text_encoder.state_dict().items()})  # every weight: embeddings, norms too
    # in fp16, as checkpoints are shared: ComfyUI holds the CLIP in the checkpoint's fp16 and rounds a patched weight to
    # it, so fp32 weights would come out of its patch rounded (about 3e-3 apart at the output)
    tuned.half().save_pretrained(root / "textcraftor" / "text_encoder")
    write_lift_config(root / "textcraftor", "textcraftor", record, {"switch_step": 0})
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    targets = ["to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2"]
    pipe.unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=targets), adapter_name="qt")  # on meta: the
    layers = {k: 0.02 * torch.randn(v.shape) for k, v in get_peft_model_state_dict(pipe.unet, adapter_name="qt").items()}
    StableDiffusionPipeline.save_lora_weights(root / "quality-tuning", unet_lora_layers=layers)  # keys, random values
    pipe.unet.delete_adapters("qt")
    write_lift_config(root / "quality-tuning", "quality-tuning", record, {})
    return {"sur": root / "sur", "textcraftor": root / "textcraftor", "refiner": bundle_lift("refiner"),
            "quality-tuning": root / "quality-tuning"}


@pytest.fixture(scope="module")
def comfyui(sd15, tmp_path_factory):
    """A copy of ComfyUI with the pack installed (`promptlift comfyui install`) and the checkpoint in models/."""
    from promptlift.comfyui.server import copy_comfyui

    root = copy_comfyui(COMFYUI, tmp_path_factory.mktemp("comfyui") / "ComfyUI")  # ../shared is read-only
    subprocess.run([str(PYTHON), "-m", "promptlift", "comfyui", "install", str(root)], check=True, env=comfy_env())
    checkpoint = CACHE / CHECKPOINT
    if not checkpoint.is_file():
        subprocess.run([sys.executable, "-m", "promptlift", "export", "checkpoint", str(checkpoint), "--model", str(sd15)],
                       check=True)
    (root / "models" / "checkpoints").mkdir(parents=True, exist_ok=True)
    os.symlink(checkpoint, root / "models" / "checkpoints" / CHECKPOINT)
    return root


@pytest.fixture(scope="module")
def sdxl(comfyui, tmp_path_factory):
    """SDXL's two text encoders at full size with random weights (fp16, in ComfyUI's models/text_encoders, keys as
    transformers 4.x and the Hub's files name them), a diffusers SDXL pipeline around them (a small UNet and VAE: the
    text path is full size) and, for it, a SUR-adapter (pooled head included) and a TextCraftor run tuning both
    encoders in every weight, text_projection included."""
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    from promptlift.memory.model import ARCHITECTURES
    from promptlift.methods.sur_adapter.model import SURAdapter
    from promptlift.pipeline import base_model_record
    from promptlift.pipeline.lift_config import write_lift_config
    from promptlift.pipeline.lifted import load_lift, pipeline_lifts, unload_lifts

    def config(name):
        return CLIPTextConfig(**json.loads((ARCHITECTURES / "sdxl" / f"{name}.json").read_text()))

    torch.manual_seed(0)
    encoders = {"text_encoder": CLIPTextModel(config("text_encoder")).half().float(),
                "text_encoder_2": CLIPTextModelWithProjection(config("text_encoder_2")).half().float()}
    folder = comfyui / "models" / "text_encoders"
    folder.mkdir(parents=True, exist_ok=True)
    for name, encoder in encoders.items():
        save_file({("" if k.startswith("text_projection") else "text_model.") + k.removeprefix("text_model."): v.half()
                   for k, v in encoder.state_dict().items()}, folder / f"sdxl-{name}.safetensors")
    tokenizer = CLIPTokenizer.from_pretrained(COMFYUI / "comfy" / "sd1_tokenizer", model_max_length=77)
    tokenizer_2 = CLIPTokenizer.from_pretrained(COMFYUI / "comfy" / "sd1_tokenizer", model_max_length=77, pad_token="!")
    unet = UNet2DConditionModel(sample_size=8, block_out_channels=(32, 64), layers_per_block=1, cross_attention_dim=2048,
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), attention_head_dim=8,
                                addition_embed_type="text_time", addition_time_embed_dim=8,
                                projection_class_embeddings_input_dim=6 * 8 + 1280, transformer_layers_per_block=1)
    vae = AutoencoderKL(block_out_channels=(32,), down_block_types=("DownEncoderBlock2D",),
                        up_block_types=("UpDecoderBlock2D",), latent_channels=4, norm_num_groups=32)
    pipe = StableDiffusionXLPipeline(vae=vae, unet=unet, scheduler=EulerDiscreteScheduler(), tokenizer=tokenizer,
                                     tokenizer_2=tokenizer_2, **encoders)
    root = tmp_path_factory.mktemp("sdxl-lifts")
    record = base_model_record(pipe, "sdxl-random")
    adapter = SURAdapter(2048, 384, num_layers=1, num_heads=8, pooled_dim=1280)
    torch.nn.init.normal_(adapter.out.weight, std=0.02)
    torch.nn.init.normal_(adapter.pooled[-1].weight, std=0.02)
    adapter.save_pretrained(root / "sur")
    write_lift_config(root / "sur", "sur-adapter", record, {"gate": "none"})
    for name, encoder in encoders.items():  # tuned in fp16, as ComfyUI holds the CLIP (see `lifts`)
        tuned = type(encoder)(encoder.config)
        tuned.load_state_dict({k: v + 0.01 * torch.randn_like(v) for k, v in encoder.state_dict().items()})
        tuned.half().save_pretrained(root / "textcraftor" / name)
    write_lift_config(root / "textcraftor", "textcraftor", record, {"switch_step": 0})
    lifts = {"sur": root / "sur", "textcraftor": root / "textcraftor"}
    expected = {"base": embeds(pipe, pooled=True)}  # promptlift's own encodings, then the 3 GB of encoders go
    for name, path in lifts.items():
        load_lift(pipe, path)
        try:
            expected[name] = embeds(pipe, pipeline_lifts(pipe), pooled=True)
        finally:
            unload_lifts(pipe)
    del pipe, encoders, tuned
    release()
    return {"expected": expected, "clip_l": "sdxl-text_encoder.safetensors", "clip_g": "sdxl-text_encoder_2.safetensors",
            **lifts}


@pytest.fixture(scope="module")
def loras(comfyui, lifts, sd15):
    """The kohya files `promptlift export lora` writes from the quality-tuning LoRA (converted) and TextCraftor's
    encoder (extracted), in ComfyUI's models/loras."""
    folder = comfyui / "models" / "loras"
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("quality-tuning", "textcraftor"):  # no image check: 512 px on a CPU is minutes; its own process:
        subprocess.run([sys.executable, "-m", "promptlift", "export", "lora", str(lifts[name]), "--output",  # the
                        str(folder / f"{name}.safetensors"), "--model", str(sd15), "--num_check_prompts", "0"],  # base
                       check=True)  # model loaded again is 4 GB more
    return [f"{name}.safetensors" for name in ("quality-tuning", "textcraftor")]


@pytest.fixture(scope="module")
def worker(comfyui, lifts, loras, sdxl, tmp_path_factory):
    """What tests/comfyui_worker.py got from ComfyUI's engine: the pack's nodes on ComfyUI's CLIP, and the LoRA keys
    ComfyUI's loader left out."""
    out = tmp_path_factory.mktemp("worker")
    spec = out / "spec.json"
    spec.write_text(json.dumps({"checkpoint": CHECKPOINT, "prompt": PROMPT, "seed": 3, "loras": loras,
                                **{name: str(path) for name, path in lifts.items()},
                                "sdxl": {k: str(v) for k, v in sdxl.items() if k != "expected"}}))
    result = subprocess.run([str(PYTHON), str(ROOT / "tests" / "comfyui_worker.py"), str(comfyui), str(spec),
                             str(out / "out.pt"), *COMFY_ARGS], env=comfy_env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-4000:]
    return torch.load(out / "out.pt")


def embeds(pipe, lifts=(), prompt=PROMPT, pooled=False):
    """promptlift's embedding of `prompt` through `lifts` (and the pooled one, for SDXL)."""
    from promptlift.pipeline import encode_prompts

    out = encode_prompts(pipe, [prompt], do_classifier_free_guidance=False, lifts=list(lifts))
    return (out.prompt_embeds[0], out.pooled_prompt_embeds[0]) if pooled else out.prompt_embeds[0]


def test_comfyui_starts_with_the_pack_and_no_import_failure(comfyui):
    result = subprocess.run([str(PYTHON), "main.py", "--cpu", "--quick-test-for-ci"], cwd=comfyui, env=comfy_env(),
                            capture_output=True, text=True, timeout=600)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    assert "custom_nodes/promptlift_nodes" in log
    failed = [line for line in log.splitlines() if "IMPORT FAILED" in line or "Cannot import" in line]
    assert not [line for line in failed if "promptlift" in line], failed


def test_the_nodes_condition_as_promptlift_encodes(worker, pipe, lifts):
    """CLIP Text Encode equals diffusers' encoding of the same checkpoint; the SUR-adapter node's conditioning equals
    promptlift's adapted embedding (at strength 1 and 0.5); the TextCraftor CLIP encodes as the tuned encoder does,
    every weight of it (the noise is on embeddings and LayerNorms too), and leaves the CLIP it patched as it was."""
    from promptlift import Lift

    assert worker["nodes"] == ["PromptliftApplySURAdapter", "PromptliftApplyTextCraftor", "PromptliftLiftedStack",
                               "PromptliftLoadLift", "PromptliftRefinePrompt"]
    base = embeds(pipe)
    tol = dict(atol=2e-3, rtol=1e-3)  # fp16 weights computed in fp32 by both; summation orders differ
    torch.testing.assert_close(worker["base"][0].float(), base, **tol)
    sur = Lift.from_pretrained(lifts["sur"])
    adapted = embeds(pipe, [sur])
    assert (adapted - base).abs().max() > 0.05  # the adapter changes the embedding: the comparison below means something
    torch.testing.assert_close(worker["sur"][0].float(), adapted, **tol)
    sur.set_weight(0.5)
    torch.testing.assert_close(worker["sur_half"][0].float(), embeds(pipe, [sur]), **tol)
    from promptlift.pipeline.lifted import load_lift, pipeline_lifts, unload_lifts

    load_lift(pipe, lifts["textcraftor"])
    try:
        expected = embeds(pipe, pipeline_lifts(pipe))
    finally:
        unload_lifts(pipe)
    assert (expected - base).abs().max() > 0.05
    torch.testing.assert_close(worker["textcraftor"][0].float(), expected, **tol)
    torch.testing.assert_close(worker["base_again"], worker["base"])


def test_the_refine_node_writes_what_promptlift_refine_writes(worker, sd15, lifts):
    from helpers import run_cli

    def refined(*extra):
        output = run_cli("refine", PROMPT, "--refiner", lifts["refiner"], "--model", sd15, "--seed", 3, "--pick", "first",
                         *extra).output
        return output.rsplit("refined: ", 1)[1].strip()

    assert worker["refined"] != PROMPT and worker["refined"] == refined("--rounds", 2, "--new_tokens", 6)
    assert worker["one_shot"] == refined("--strategy", "one-shot", "--max_new_tokens", 32)
    picked, candidates = worker["by_reward"]  # picked each round by a reward on ComfyUI's previews of the candidates
    assert picked != PROMPT and picked in candidates.split("\n")  # the last round's (the refiner may find fewer than 3)
    assert "connect the checkpoint's MODEL, CLIP and VAE" in worker["by_reward_without_model"]
    assert worker["stack_prompt"] == worker["one_shot"]  # the stack's rewrite: the refiner's one-shot, its folder's options


@pytest.fixture
def server(comfyui):
    """ComfyUI's HTTP server on 127.0.0.1, started as a user starts it (main.py), the pack in custom_nodes/; one per
    test (it holds the checkpoint's 4 GB, which the other tests' ComfyUI processes need)."""
    from promptlift.comfyui.server import ComfyUIServer

    with ComfyUIServer(comfyui, PYTHON, args=COMFY_ARGS, env=comfy_env()) as url:
        yield url


def workflow(lifts: dict, prefix: str) -> dict:
    """The docs' workflow (`promptlift.comfyui.workflow`) at 64 px, 2 steps, with the quality-tuning LoRA."""
    from promptlift.comfyui.workflow import example_workflow

    return example_workflow(CHECKPOINT, str(lifts["refiner"]), str(lifts["sur"]), str(lifts["textcraftor"]), PROMPT,
                            "quality-tuning.safetensors", size=64, steps=2, filename_prefix=prefix)


def saved_images(comfyui: Path, prefix: str) -> list[Path]:
    return sorted((comfyui / "output").glob(f"{prefix}*.png"))


def test_a_workflow_with_the_pack_runs_in_comfyuis_server_and_saves_an_image(server, comfyui, lifts, loras):
    from PIL import Image

    from promptlift.comfyui.server import run_workflow

    entry = run_workflow(server, workflow(lifts, "lifted"))
    assert entry["status"]["status_str"] == "success", entry["status"]
    images = saved_images(comfyui, "lifted")
    assert len(images) == 1 and Image.open(images[0]).size == (64, 64)


def test_bad_input_fails_in_the_node_with_the_fix_and_writes_nothing(server, comfyui, lifts, loras, tmp_path):
    """A lift trained on another model's widths (SDXL's on this SD 1.5), a folder that holds no lift, a refine node
    given another lift than a refiner, a TextCraftor encoder whose widths do not fit the CLIP: each workflow stops at
    the node with a message naming the input and the fix, and saves no image."""
    from promptlift.comfyui.server import run_workflow
    from promptlift.pipeline.lift_config import read_lift_config, write_lift_config

    sdxl = tmp_path / "sur-sdxl"  # the adapter's folder, recorded as trained on an SDXL model
    shutil.copytree(lifts["sur"], sdxl)
    record = {**read_lift_config(sdxl)["base_model"], "pipeline_class": "StableDiffusionXLPipeline",
              "text_embedding_dims": [768, 1280], "cross_attention_dim": 2048}
    write_lift_config(sdxl, "sur-adapter", record, {"gate": "none"})
    empty = tmp_path / "not-a-lift"
    empty.mkdir()
    (empty / "notes.txt").write_text("no weights here")
    narrow = tmp_path / "textcraftor-narrow"  # a tuned encoder 512 wide, as SD 1.x's is not
    from transformers import CLIPTextConfig, CLIPTextModel

    CLIPTextModel(CLIPTextConfig(hidden_size=512, intermediate_size=1024, num_hidden_layers=1,
                                 num_attention_heads=8)).save_pretrained(narrow / "text_encoder")
    write_lift_config(narrow, "textcraftor", None, {"switch_step": 0})
    cases = {"sdxl": ({"3": str(sdxl)}, "8", ["trained on", "2048 wide", "768 wide", "load a lift trained on this"]),
             "empty": ({"3": str(empty)}, "3", ["not-a-lift", "holds no lift_config.json", "pass the folder a trainer"]),
             "refiner": ({"2": str(lifts["sur"])}, "5", ["not a 'refiner' lift", "promptlift train refiner"]),
             "narrow": ({"4": str(narrow)}, "6", ["do not fit this CLIP", "load a lift trained on"])}
    for name, (sources, node, words) in cases.items():
        graph = workflow(lifts, f"bad-{name}")
        for node_id, source in sources.items():
            graph[node_id]["inputs"]["source"] = source
        entry = run_workflow(server, graph)
        assert entry["status"]["status_str"] == "error", (name, entry["status"])
        error = next(m[1] for m in entry["status"]["messages"] if m[0] == "execution_error")
        assert error["node_id"] == node, (name, error)
        assert all(w in error["exception_message"] for w in words), (name, error["exception_message"])
        assert not saved_images(comfyui, f"bad-{name}"), name


def test_every_kohya_file_promptlift_writes_loads_in_comfyui_with_no_key_left_out(worker):
    """SD 1.5: the quality-tuning and TextCraftor files through ComfyUI's LoraLoader on the checkpoint; SDXL: a UNet
    LoRA (kohya's block names) and one of both text encoders (text_projection included), named by promptlift's export,
    through ComfyUI's key maps of a full-size SDXL model and CLIP (meta device): no key left unloaded."""
    assert worker["sdxl_model"] == "SDXL"
    bogus = worker["loras"].pop("bogus")
    assert len(bogus["unloaded"]) == 2  # a key no model has is counted, its alpha too
    assert set(worker["loras"]) == {"quality-tuning.safetensors", "textcraftor.safetensors", "sdxl-unet",
                                    "sdxl-text-encoders"}
    for name, result in worker["loras"].items():
        assert result["keys"] > 0 and not result["unloaded"], (name, result["unloaded"][:5])
    assert worker["loras"]["sdxl-text-encoders"]["patched"] * 3 == worker["loras"]["sdxl-text-encoders"]["keys"]


def test_on_sdxl_the_nodes_condition_as_promptlift_encodes(worker, sdxl):
    """SDXL's CLIPs at full size in ComfyUI (DualCLIPLoader): CLIP Text Encode's conditioning (both encoders'
    penultimate layers, 2048 wide) and pooled output equal diffusers'; the SUR-adapter node adapts both as promptlift
    does; the TextCraftor CLIP, both encoders patched (text_projection included), encodes as the tuned encoders do."""
    expected, out = sdxl["expected"], worker["sdxl"]
    tol = dict(atol=2e-3, rtol=1e-3)
    for name, (cond, pooled) in expected.items():
        if name != "base":  # the lift changes both: the comparison means something
            assert (cond - expected["base"][0]).abs().max() > 0.05, name
            assert (pooled - expected["base"][1]).abs().max() > 0.01, name
        torch.testing.assert_close(out[name][0][0].float(), cond, **tol, msg=name)
        torch.testing.assert_close(out[name][1][0].float(), pooled, **tol, msg=name)
