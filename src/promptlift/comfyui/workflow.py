"""The example ComfyUI workflow in ComfyUI's API format (what its HTTP API's POST /prompt takes, and its "Export
(API)" writes): the docs ship it, tests/test_comfyui.py posts it to a ComfyUI server, and
scripts/comfyui_workflow.py turns it into the UI format and a screenshot through ComfyUI's own page."""

from __future__ import annotations

__all__ = ["example_workflow"]


def example_workflow(checkpoint: str, refiner: str, sur_adapter: str, textcraftor: str, prompt: str,
                     quality_tuning: str | None = None, *, size: int = 512, steps: int = 25, seed: int = 0,
                     filename_prefix: str = "promptlift") -> dict:
    """The lifted stack node by node: the refiner rewrites `prompt`, the TextCraftor CLIP encodes the rewrite, the
    SUR-adapter adapts that conditioning, KSampler samples (the quality-tuning LoRA, a kohya file in models/loras, on
    the MODEL at the stack's strength 2.5 when given), and the image is saved. Node ids are strings, links are
    [node id, output index], as ComfyUI's API format writes them."""
    model = ["1", 0]
    graph = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": checkpoint}},
        "2": {"class_type": "PromptliftLoadLift", "inputs": {"source": refiner}},
        "3": {"class_type": "PromptliftLoadLift", "inputs": {"source": sur_adapter}},
        "4": {"class_type": "PromptliftLoadLift", "inputs": {"source": textcraftor}},
        "5": {"class_type": "PromptliftRefinePrompt", "inputs": {
            "text": prompt, "lift": ["2", 0], "strategy": "one-shot", "max_new_tokens": 32, "rounds": 3, "candidates": 3,
            "new_tokens": 6, "pick": 0, "seed": seed, "clip": ["1", 1]}},
        "6": {"class_type": "PromptliftApplyTextCraftor", "inputs": {"clip": ["1", 1], "lift": ["4", 0], "strength": 1.0}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": ["5", 0], "clip": ["6", 0]}},
        "8": {"class_type": "PromptliftApplySURAdapter", "inputs": {
            "conditioning": ["7", 0], "clip": ["6", 0], "text": ["5", 0], "lift": ["3", 0], "strength": 1.0}},
        "9": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 1]}},
        "10": {"class_type": "EmptyLatentImage", "inputs": {"width": size, "height": size, "batch_size": 1}},
    }
    if quality_tuning is not None:
        graph["14"] = {"class_type": "LoraLoaderModelOnly", "inputs": {
            "model": model, "lora_name": quality_tuning, "strength_model": 2.5}}
        model = ["14", 0]
    graph.update({
        "11": {"class_type": "KSampler", "inputs": {
            "model": model, "positive": ["8", 0], "negative": ["9", 0], "latent_image": ["10", 0], "seed": seed,
            "steps": steps, "cfg": 7.5, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}},
        "12": {"class_type": "VAEDecode", "inputs": {"samples": ["11", 0], "vae": ["1", 2]}},
        "13": {"class_type": "SaveImage", "inputs": {"images": ["12", 0], "filename_prefix": filename_prefix}},
    })
    return graph
