"""Single-file checkpoints: a diffusers SD 1.x / 2.x / SDXL pipeline written in the original (CompVis / SGM) layout
that A1111, ComfyUI and diffusers' `from_single_file` load.

The key maps invert diffusers' own converters (`diffusers.loaders.single_file_utils`), from the pipeline's configs
(blocks, layers per block), so they hold for any size of these architectures, the embedded model's included:
UNet -> `model.diffusion_model.*`, VAE -> `first_stage_model.*`, CLIP text encoders -> `cond_stage_model.transformer.*`
(SD 1.x) or `conditioner.embedders.0.transformer.*` (SDXL), OpenCLIP ones (SD 2.x; SDXL's second) ->
`cond_stage_model.model.*` / `conditioner.embedders.1.model.*` with q, k, v fused into `in_proj`.
"""

from __future__ import annotations

import torch
from diffusers import StableDiffusionXLPipeline

__all__ = ["pipeline_to_original", "unet_to_original", "vae_to_original"]

_RESNET = (("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"), ("conv2", "out_layers.3"),
           ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection"))
_UNET_FIXED = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
               "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2",
               "add_embedding.linear_1": "label_emb.0.0", "add_embedding.linear_2": "label_emb.0.2"}


def _rename_resnet(rest: str) -> str:
    for new, old in _RESNET:
        rest = rest.replace(new, old, 1) if rest.startswith(new) else rest
    return rest


def unet_to_original(state: dict[str, torch.Tensor], config) -> dict[str, torch.Tensor]:
    """A diffusers UNet2DConditionModel state dict -> the original UNet's keys (without the `model.diffusion_model.`
    prefix)."""
    per = config["layers_per_block"] + 1  # input/output blocks per resolution: the resnets (+ the down/upsampler)
    up_attention = [t.startswith("CrossAttn") for t in config["up_block_types"]]
    prefixes: dict[str, str] = {}
    for i in range(len(config["down_block_types"])):
        for j in range(config["layers_per_block"]):
            prefixes[f"down_blocks.{i}.resnets.{j}."] = f"input_blocks.{per * i + j + 1}.0."
            prefixes[f"down_blocks.{i}.attentions.{j}."] = f"input_blocks.{per * i + j + 1}.1."
        prefixes[f"down_blocks.{i}.downsamplers.0.conv."] = f"input_blocks.{per * (i + 1)}.0.op."
    for i in range(len(config["up_block_types"])):
        for j in range(per):
            prefixes[f"up_blocks.{i}.resnets.{j}."] = f"output_blocks.{per * i + j}.0."
            prefixes[f"up_blocks.{i}.attentions.{j}."] = f"output_blocks.{per * i + j}.1."
        prefixes[f"up_blocks.{i}.upsamplers.0."] = f"output_blocks.{per * i + per - 1}.{2 if up_attention[i] else 1}."
    prefixes.update({"mid_block.resnets.0.": "middle_block.0.", "mid_block.attentions.0.": "middle_block.1.",
                     "mid_block.resnets.1.": "middle_block.2."})
    out = {}
    for key, value in state.items():
        module, _, param = key.rpartition(".")
        if module in _UNET_FIXED:
            out[f"{_UNET_FIXED[module]}.{param}"] = value
            continue
        prefix = next((p for p in prefixes if key.startswith(p)), None)
        if prefix is None:
            raise ValueError(f"UNet weight {key!r} has no place in the original layout; export supports SD 1.x, 2.x "
                             "and SDXL UNets.")
        rest = key[len(prefix):]
        out[prefixes[prefix] + (_rename_resnet(rest) if ".resnets." in prefix else rest)] = value
    return out


def vae_to_original(state: dict[str, torch.Tensor], config) -> dict[str, torch.Tensor]:
    """A diffusers AutoencoderKL state dict -> the original VAE's keys (without `first_stage_model.`)."""
    n = len(config["block_out_channels"])
    prefixes = {"encoder.conv_norm_out.": "encoder.norm_out.", "decoder.conv_norm_out.": "decoder.norm_out."}
    for side in ("encoder", "decoder"):
        prefixes[f"{side}.mid_block.attentions.0."] = f"{side}.mid.attn_1."
        for i in range(2):
            prefixes[f"{side}.mid_block.resnets.{i}."] = f"{side}.mid.block_{i + 1}."
    for i in range(n):
        prefixes[f"encoder.down_blocks.{i}.resnets."] = f"encoder.down.{i}.block."
        prefixes[f"encoder.down_blocks.{i}.downsamplers.0."] = f"encoder.down.{i}.downsample."
        prefixes[f"decoder.up_blocks.{i}.resnets."] = f"decoder.up.{n - 1 - i}.block."
        prefixes[f"decoder.up_blocks.{i}.upsamplers.0."] = f"decoder.up.{n - 1 - i}.upsample."
    attention = {"group_norm.": "norm.", "to_q.": "q.", "to_k.": "k.", "to_v.": "v.", "to_out.0.": "proj_out."}
    out = {}
    for key, value in state.items():
        prefix = next((p for p in prefixes if key.startswith(p)), "")
        rest = key[len(prefix):]
        if ".attn_1." in prefixes.get(prefix, ""):
            name = next(a for a in attention if rest.startswith(a))
            rest = attention[name] + rest[len(name):]
            value = value[..., None, None] if value.dim() == 2 else value  # linear -> 1x1 conv, as the original
        out[prefixes.get(prefix, "") + rest.replace("conv_shortcut", "nin_shortcut")] = value
    return out


def _text_model_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """transformers >= 5.6 flattened CLIPTextModel (`embeddings.*`); the original layout keeps `text_model.*`."""
    return {k if k.startswith(("text_model.", "text_projection")) else f"text_model.{k}": v for k, v in state.items()
            if not k.endswith("position_ids")}


def _clip_to_original(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A transformers CLIPTextModel state dict in the original CLIP (HF) layout: `text_model.*`."""
    return _text_model_keys(state)


def _open_clip_to_original(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A transformers CLIP text model state dict -> OpenCLIP's (q, k, v fused into in_proj; projection transposed)."""
    state = _text_model_keys(state)
    fixed = {"text_model.embeddings.position_embedding.weight": "positional_embedding",
             "text_model.embeddings.token_embedding.weight": "token_embedding.weight",
             "text_model.final_layer_norm.weight": "ln_final.weight", "text_model.final_layer_norm.bias": "ln_final.bias"}
    out = {}
    for key, value in state.items():
        if key in fixed:
            out[fixed[key]] = value
        elif key == "text_projection.weight":
            out["text_projection"] = value.T.contiguous()  # (hidden, projection)
        elif key.startswith("text_model.encoder.layers."):
            layer, _, rest = key[len("text_model.encoder.layers."):].partition(".")
            head = f"transformer.resblocks.{layer}."
            if rest.startswith("self_attn.") and rest.split(".")[1] in ("q_proj", "k_proj", "v_proj"):
                if rest.startswith("self_attn.q_proj."):
                    kind = rest.rpartition(".")[2]  # weight or bias
                    parts = [state[f"text_model.encoder.layers.{layer}.self_attn.{p}_proj.{kind}"] for p in "qkv"]
                    out[f"{head}attn.in_proj_{kind}"] = torch.cat(parts)
                continue
            rest = (rest.replace("self_attn.out_proj.", "attn.out_proj.").replace("layer_norm1.", "ln_1.")
                    .replace("layer_norm2.", "ln_2.").replace("mlp.fc1.", "mlp.c_fc.").replace("mlp.fc2.", "mlp.c_proj."))
            out[head + rest] = value
        else:
            raise ValueError(f"text encoder weight {key!r} has no place in the OpenCLIP layout.")
    return out


def _is_open_clip(encoder) -> bool:
    """SD 2.x's encoder and SDXL's second are OpenCLIP models (GELU); SD 1.x's and SDXL's first are OpenAI CLIP."""
    return encoder.config.hidden_act == "gelu"


def pipeline_to_original(pipe) -> dict[str, torch.Tensor]:
    """Every weight of a StableDiffusionPipeline / StableDiffusionXLPipeline under its original single-file key."""
    out = {f"model.diffusion_model.{k}": v for k, v in unet_to_original(pipe.unet.state_dict(), pipe.unet.config).items()}
    out.update({f"first_stage_model.{k}": v for k, v in vae_to_original(pipe.vae.state_dict(), pipe.vae.config).items()})
    if isinstance(pipe, StableDiffusionXLPipeline):
        encoders = [("conditioner.embedders.0.transformer.", pipe.text_encoder, _clip_to_original),
                    ("conditioner.embedders.1.model.", pipe.text_encoder_2, _open_clip_to_original)]
    elif _is_open_clip(pipe.text_encoder):
        encoders = [("cond_stage_model.model.", pipe.text_encoder, _open_clip_to_original)]
    else:
        encoders = [("cond_stage_model.transformer.", pipe.text_encoder, _clip_to_original)]
    for prefix, encoder, convert in encoders:
        out.update({prefix + k: v for k, v in convert(encoder.state_dict()).items()})
    return {k: v.detach().contiguous() for k, v in out.items()}
