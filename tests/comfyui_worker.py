"""Run inside ComfyUI's engine by tests/test_comfyui.py (ComfyUI's Python, in a copy of ComfyUI): load a checkpoint
with ComfyUI's own loader, run its CLIP Text Encode and the promptlift pack as ComfyUI loaded it from custom_nodes/,
and save what came out (tensors and text) for the test to compare with promptlift's own pipeline.

    python comfyui_worker.py COMFYUI_DIR SPEC.json OUT.pt [COMFYUI OPTIONS...]

SPEC.json: {"checkpoint": file name in models/checkpoints, "prompt": str, "sur": folder, "textcraftor": folder,
"refiner": folder, "seed": int, "loras": [file names in models/loras]}.

Then the LoRA keys: each kohya file of "loras" through ComfyUI's LoraLoader on the checkpoint, and SDXL LoRAs of every
kind promptlift exports (UNet; both text encoders, text_projection included), named by promptlift's export, through
ComfyUI's key maps of an SDXL model and CLIP built on the meta device (full size, no memory): how many keys each
left unloaded ("lora key not loaded" in ComfyUI's log).
"""

import asyncio
import gc
import json
import logging
import os
import sys

comfy_dir, spec_path, out_path, *comfy_args = sys.argv[1:]
os.chdir(comfy_dir)
sys.path.insert(0, comfy_dir)
sys.argv = [sys.argv[0], "--cpu", *comfy_args]

import comfy.options  # noqa: E402  (ComfyUI's, as all below)

comfy.options.enable_args_parsing()  # as main.py does: its modules read --cpu when imported

import comfy.lora  # noqa: E402
import comfy.model_management  # noqa: E402
import comfy.lora_convert  # noqa: E402
import comfy.model_detection  # noqa: E402
import comfy.sdxl_clip  # noqa: E402
import comfy.utils  # noqa: E402
import nodes  # noqa: E402
import torch  # noqa: E402
from accelerate import init_empty_weights  # noqa: E402
from diffusers import UNet2DConditionModel  # noqa: E402

from promptlift.memory.model import ARCHITECTURES  # noqa: E402

spec = json.loads(open(spec_path).read())
asyncio.run(nodes.init_extra_nodes(init_custom_nodes=True))  # as main.py starts: the pack from custom_nodes/
pack = {name: nodes.NODE_CLASS_MAPPINGS[name]() for name in nodes.NODE_CLASS_MAPPINGS if name.startswith("Promptlift")}
model, clip, vae = nodes.CheckpointLoaderSimple().load_checkpoint(spec["checkpoint"])[:3]
encode = nodes.CLIPTextEncode()
prompt = spec["prompt"]
out = {"nodes": sorted(pack)}
base, = encode.encode(clip, prompt)
out["base"] = base[0][0]
sur, = pack["PromptliftLoadLift"].load(spec["sur"])
out["sur"] = pack["PromptliftApplySURAdapter"].apply(base, clip, prompt, sur, 1.0)[0][0][0]
out["sur_half"] = pack["PromptliftApplySURAdapter"].apply(base, clip, prompt, sur, 0.5)[0][0][0]
textcraftor, = pack["PromptliftLoadLift"].load(spec["textcraftor"])
tuned_clip, = pack["PromptliftApplyTextCraftor"].apply(clip, textcraftor, 1.0)
out["textcraftor"] = encode.encode(tuned_clip, prompt)[0][0][0]
out["base_again"] = encode.encode(clip, prompt)[0][0][0]  # the patch is the clone's, not the original CLIP's
refiner, = pack["PromptliftLoadLift"].load(spec["refiner"])
refine = pack["PromptliftRefinePrompt"].refine
out["refined"], out["candidates"] = refine(prompt, refiner, "iterative", 20, 2, 3, 6, 0, spec["seed"], clip=clip)
out["one_shot"] = refine(prompt, refiner, "one-shot", 32, 1, 3, 6, 0, spec["seed"], clip=clip)[0]
out["by_reward"] = refine(prompt, refiner, "iterative", 20, 2, 3, 6, 0, spec["seed"], clip=clip, pick_by="reward",
                          reward="world-aesthetic-reward", model=model, vae=vae, preview_steps=2, preview_size=64)
try:
    refine(prompt, refiner, "iterative", 20, 2, 3, 6, 0, spec["seed"], clip=clip, pick_by="reward")
except ValueError as e:
    out["by_reward_without_model"] = str(e)
stack, rewritten = pack["PromptliftLiftedStack"].apply(clip, prompt, 1.0, 1.0, refiner=refiner, sur_adapter=sur,
                                                       textcraftor=textcraftor)
out["stack"], out["stack_prompt"] = stack[0][0], rewritten

class Unloaded(logging.Handler):
    """Counts ComfyUI's warnings about LoRA keys it did not load."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.keys = []

    def emit(self, record):
        message = record.getMessage()
        if message.startswith(("lora key not loaded", "NOT LOADED")):
            self.keys.append(message)


def unloaded(load) -> tuple[int, list[str]]:
    handler = Unloaded()
    logging.getLogger().addHandler(handler)
    try:
        result = load()
    finally:
        logging.getLogger().removeHandler(handler)
    return result, handler.keys


out["loras"] = {}
for name in spec["loras"]:
    (patched_model, patched_clip), keys = unloaded(lambda: nodes.LoraLoader().load_lora(model, clip, name, 1.0, 1.0))
    out["loras"][name] = {"unloaded": keys, "keys": len(comfy.utils.load_torch_file(f"models/loras/{name}"))}


model = clip = vae = patched_model = patched_clip = tuned_clip = None
comfy.model_management.unload_all_models()  # the SD 1.5 models go before SDXL's CLIPs come
comfy.model_management.soft_empty_cache()
gc.collect()
xl = spec["sdxl"]  # SDXL's CLIPs at full size, with lifts trained for them
xl_clip, = nodes.DualCLIPLoader().load_clip(xl["clip_l"], xl["clip_g"], "sdxl")
xl_base, = encode.encode(xl_clip, prompt)
out["sdxl"] = {"base": (xl_base[0][0], xl_base[0][1]["pooled_output"])}
xl_sur, = pack["PromptliftLoadLift"].load(xl["sur"])
adapted = pack["PromptliftApplySURAdapter"].apply(xl_base, xl_clip, prompt, xl_sur, 1.0)[0][0]
out["sdxl"]["sur"] = (adapted[0], adapted[1]["pooled_output"])
xl_tc, = pack["PromptliftLoadLift"].load(xl["textcraftor"])
tuned = encode.encode(pack["PromptliftApplyTextCraftor"].apply(xl_clip, xl_tc, 1.0)[0], prompt)[0][0]
out["sdxl"]["textcraftor"] = (tuned[0], tuned[1]["pooled_output"])


def sdxl_config(name: str) -> dict:
    return json.loads((ARCHITECTURES / "sdxl" / f"{name}.json").read_text())


def sdxl_loras(unet) -> dict:
    """{what: kohya state dict} of a full-size SDXL UNet LoRA and a LoRA of both text encoders (on the meta device), as
    promptlift's export names them."""
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from promptlift.export.kohya import diffusers_lora_to_kohya

    with init_empty_weights():
        encoders = {"text_encoder": CLIPTextModel(CLIPTextConfig(**sdxl_config("text_encoder"))),
                    "text_encoder_2": CLIPTextModelWithProjection(CLIPTextConfig(**sdxl_config("text_encoder_2")))}
    unet.add_adapter(LoraConfig(r=4, target_modules=["to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2"]))
    state = {f"unet.{k}": v for k, v in get_peft_model_state_dict(unet).items()}
    loras = {"sdxl-unet": diffusers_lora_to_kohya(state, {"unet": 4.0}, True, sdxl_config("unet"))}
    state = {}
    for name, encoder in encoders.items():
        encoder.add_adapter(LoraConfig(r=4, target_modules=["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2", "text_projection"]))
        state.update({f"{name}.{k}": v for k, v in get_peft_model_state_dict(encoder).items()})
    loras["sdxl-text-encoders"] = diffusers_lora_to_kohya(state, {"text_encoder": 4.0, "text_encoder_2": 4.0}, True)
    return loras


with init_empty_weights():
    sdxl_unet = UNet2DConditionModel.from_config(sdxl_config("unet"))
detected = comfy.model_detection.model_config_from_diffusers_unet(sdxl_unet.state_dict())  # ComfyUI's own detection
key_map = comfy.lora.model_lora_keys_unet(detected.get_model({}, device=torch.device("meta")), {})
key_map = comfy.lora.model_lora_keys_clip(comfy.sdxl_clip.SDXLClipModel(device="meta"), key_map)
out["sdxl_model"] = type(detected).__name__
bogus = {"lora_unet_no_such_block.lora_down.weight": torch.zeros(4, 8), "lora_unet_no_such_block.alpha": torch.tensor(4.0)}
for name, lora in {**sdxl_loras(sdxl_unet), "bogus": bogus}.items():  # bogus: that the count counts
    patches, keys = unloaded(lambda: comfy.lora.load_lora(comfy.lora_convert.convert_lora(lora), key_map))
    out["loras"][name] = {"unloaded": keys, "keys": len(lora), "patched": len(patches)}
torch.save(out, out_path)
print("worker done")
