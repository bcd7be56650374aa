"""Run inside ComfyUI's engine by tests/test_comfyui.py (ComfyUI's Python, in a copy of ComfyUI): load a checkpoint
with ComfyUI's own loader, run its CLIP Text Encode and the promptlift pack as ComfyUI loaded it from custom_nodes/,
and save what came out (tensors and text) for the test to compare with promptlift's own pipeline.

    python comfyui_worker.py COMFYUI_DIR SPEC.json OUT.pt

SPEC.json: {"checkpoint": file name in models/checkpoints, "prompt": str, "sur": folder, "textcraftor": folder,
"refiner": folder, "seed": int}.
"""

import asyncio
import json
import os
import sys

comfy_dir, spec_path, out_path = sys.argv[1:4]
os.chdir(comfy_dir)
sys.path.insert(0, comfy_dir)
sys.argv = [sys.argv[0], "--cpu"]

import comfy.options  # noqa: E402  (ComfyUI's, as all below)

comfy.options.enable_args_parsing()  # as main.py does: its modules read --cpu when imported

import nodes  # noqa: E402
import torch  # noqa: E402

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
stack, rewritten = pack["PromptliftLiftedStack"].apply(clip, prompt, 1.0, 1.0, refiner=refiner, sur_adapter=sur,
                                                       textcraftor=textcraftor)
out["stack"], out["stack_prompt"] = stack[0][0], rewritten
torch.save(out, out_path)
print("worker done")
