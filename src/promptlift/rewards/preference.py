"""Human-preference rewards from their original checkpoints, run on transformers' models.

- HPSv2 / v2.1 (Wu et al. 2023): an open_clip ViT-H-14 fine-tuned on HPD v2. Its checkpoint is in open_clip's
  layout; :func:`open_clip_to_transformers` maps it onto a `CLIPModel`, so open_clip (and torchvision) are not
  needed. Score: cosine(image, prompt), as `hpsv2.score` reports it.
- ImageReward (Xu et al. 2023): BLIP's ViT-L image tower, a BERT text encoder cross-attending to it, and an
  MLP on the [CLS] feature, normalised by the training mean/std. The original `ImageReward.pt` is mapped onto
  `BlipVisionModel` + `BlipTextModel` by :func:`blip_to_transformers`.

Both preprocess in torch (differentiable) and tokenise with their own tokenizers.
"""

from __future__ import annotations

import json
import logging
import math
import re
from pathlib import Path
from typing import Sequence

import torch

from .base import Reward, WeightSource, clip_preprocess, register_reward
from .clip import AestheticMLP, CLIPScore

__all__ = ["HPSv2", "ImageReward", "blip_to_transformers", "open_clip_to_transformers"]

logger = logging.getLogger(__name__)

HPS_REPO, HPS_FILE = "xswu/HPSv2", "HPS_v2.1_compressed.pt"
HPS_PROCESSOR = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"  # open_clip's tokenizer and transform for ViT-H-14
IMAGEREWARD_REPO = "THUDM/ImageReward"
IMAGEREWARD_TOKENIZER = "google-bert/bert-base-uncased"
OPENAI_MEAN, OPENAI_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


def _load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    sd = torch.load(Path(path).expanduser(), map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
    return {k.removeprefix("module."): v for k, v in sd.items()}


def _hub_file(location: str, filename: str, beside: bool = False) -> str:
    """`filename` from a local folder or hub repo `location`; a local file stands for itself, or with
    `beside=True` for the folder it is in (so a config can sit next to its weights)."""
    path = Path(location).expanduser()
    if path.is_file():
        return str(path.parent / filename if beside else path)
    if path.is_dir():
        return str(path / filename)
    from huggingface_hub import hf_hub_download

    return hf_hub_download(location, filename)


def _file_source(what: str, location: str, filename: str) -> WeightSource:
    return WeightSource(what, location, f"pass a local file or folder, or run once online to fetch {filename} "
                        f"from the hub repo {location}.", filename=filename)


# --- HPSv2 -------------------------------------------------------------------------------------------------


def _split_in_proj(prefix: str, value: torch.Tensor, out: dict, kind: str) -> None:
    for name, part in zip(("q_proj", "k_proj", "v_proj"), value.chunk(3, dim=0)):
        out[f"{prefix}.self_attn.{name}.{kind}"] = part


def open_clip_to_transformers(state_dict: dict[str, torch.Tensor], head_width: int = 64, **text_config):
    """Map an open_clip ViT state dict onto a `transformers.CLIPModel`; returns the model with the weights loaded.

    The architecture is read from the tensor shapes; heads = width / `head_width` (64 for every open_clip ViT).
    `text_config` sets what the weights cannot tell, e.g. the tokenizer's bos/eos/pad ids (the text feature is
    read at the eos token).
    """
    from transformers import CLIPConfig, CLIPModel

    sd = state_dict
    v_width, t_width = sd["visual.conv1.weight"].shape[0], sd["token_embedding.weight"].shape[1]
    patch = sd["visual.conv1.weight"].shape[-1]
    grid = math.isqrt(sd["visual.positional_embedding"].shape[0] - 1)

    def layers(prefix):
        return len({k.removeprefix(prefix).split(".")[0] for k in sd if k.startswith(prefix)})

    config = CLIPConfig(
        text_config=dict(vocab_size=sd["token_embedding.weight"].shape[0], hidden_size=t_width,
                         intermediate_size=sd["transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
                         num_hidden_layers=layers("transformer.resblocks."), num_attention_heads=max(1, t_width // head_width),
                         max_position_embeddings=sd["positional_embedding"].shape[0], hidden_act="gelu", **text_config),
        vision_config=dict(hidden_size=v_width, intermediate_size=sd["visual.transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
                           num_hidden_layers=layers("visual.transformer.resblocks."),
                           num_attention_heads=max(1, v_width // head_width), image_size=grid * patch, patch_size=patch,
                           hidden_act="gelu"),
        projection_dim=sd["text_projection"].shape[1],
    )
    out = {"logit_scale": sd["logit_scale"], "text_projection.weight": sd["text_projection"].t(),
           "visual_projection.weight": sd["visual.proj"].t(),
           "text_model.embeddings.token_embedding.weight": sd["token_embedding.weight"],
           "text_model.embeddings.position_embedding.weight": sd["positional_embedding"],
           "vision_model.embeddings.patch_embedding.weight": sd["visual.conv1.weight"],
           "vision_model.embeddings.class_embedding": sd["visual.class_embedding"],
           "vision_model.embeddings.position_embedding.weight": sd["visual.positional_embedding"]}
    for src, dst in (("ln_final", "text_model.final_layer_norm"), ("visual.ln_pre", "vision_model.pre_layrnorm"),
                     ("visual.ln_post", "vision_model.post_layernorm")):
        out[f"{dst}.weight"], out[f"{dst}.bias"] = sd[f"{src}.weight"], sd[f"{src}.bias"]
    block = re.compile(r"^(visual\.)?transformer\.resblocks\.(\d+)\.(.+)$")
    renames = {"ln_1": "layer_norm1", "ln_2": "layer_norm2", "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2",
               "attn.out_proj": "self_attn.out_proj"}
    for key, value in sd.items():
        m = block.match(key)
        if not m:
            continue
        tower = "vision_model" if m.group(1) else "text_model"
        prefix, rest = f"{tower}.encoder.layers.{m.group(2)}", m.group(3)
        if rest in ("attn.in_proj_weight", "attn.in_proj_bias"):
            _split_in_proj(prefix, value, out, rest.rsplit("_", 1)[1])
            continue
        module, _, kind = rest.rpartition(".")
        if module not in renames:
            raise KeyError(f"unexpected open_clip key {key!r}; is this an open_clip ViT checkpoint?")
        out[f"{prefix}.{renames[module]}.{kind}"] = value
    model = CLIPModel(config)
    missing, unexpected = model.load_state_dict(out, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise KeyError(f"open_clip -> transformers mapping incomplete: missing {missing}, unexpected {unexpected}")
    return model


class HPSv2(CLIPScore):
    """Human Preference Score v2: cosine(image, prompt) under the HPS-tuned CLIP-H (≈0.2-0.35 on real images)."""

    score_range = (-1.0, 1.0)

    def forward(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        return super().forward(images, prompts) / 100.0


@register_reward("hpsv2", help="HPSv2.1 (open_clip ViT-H-14 checkpoint, run on transformers' CLIPModel).",
                 sources=lambda checkpoint=HPS_REPO, processor=HPS_PROCESSOR, **_: [
                     _file_source("HPSv2 checkpoint", checkpoint, HPS_FILE),
                     WeightSource("HPSv2 tokenizer/processor", processor,
                                  "pass a local folder or hub id, or run once online to fill the HF cache.")])
def _hpsv2(checkpoint: str = HPS_REPO, processor: str = HPS_PROCESSOR) -> HPSv2:
    from transformers import AutoProcessor

    proc = AutoProcessor.from_pretrained(processor)
    tok = proc.tokenizer
    model = open_clip_to_transformers(_load_state_dict(_hub_file(checkpoint, HPS_FILE)), bos_token_id=tok.bos_token_id,
                                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    return HPSv2(model, tok, proc.image_processor)


# --- ImageReward -------------------------------------------------------------------------------------------


def blip_to_transformers(state_dict: dict[str, torch.Tensor], med_config: dict):
    """Map ImageReward's `blip.visual_encoder` / `blip.text_encoder` / `mlp` onto transformers modules.

    Returns (BlipVisionModel, BlipTextModel, AestheticMLP-shaped head) with the weights loaded.
    """
    from transformers import BlipTextConfig, BlipTextModel, BlipVisionConfig, BlipVisionModel

    sd = state_dict
    vis = {k.removeprefix("blip.visual_encoder."): v for k, v in sd.items() if k.startswith("blip.visual_encoder.")}
    width, patch = vis["cls_token"].shape[-1], vis["patch_embed.proj.weight"].shape[-1]
    n_layers = len({k.split(".")[1] for k in vis if k.startswith("blocks.")})
    vision = BlipVisionModel(BlipVisionConfig(
        hidden_size=width, intermediate_size=vis["blocks.0.mlp.fc1.weight"].shape[0], num_hidden_layers=n_layers,
        num_attention_heads=max(1, width // 64), patch_size=patch,
        image_size=math.isqrt(vis["pos_embed"].shape[1] - 1) * patch, layer_norm_eps=1e-6))
    renamed = {}
    for key, value in vis.items():
        key = {"cls_token": "embeddings.class_embedding", "pos_embed": "embeddings.position_embedding",
               "patch_embed.proj.weight": "embeddings.patch_embedding.weight",
               "patch_embed.proj.bias": "embeddings.patch_embedding.bias",
               "norm.weight": "post_layernorm.weight", "norm.bias": "post_layernorm.bias"}.get(key, key)
        key = (key.replace("blocks.", "encoder.layers.").replace("norm1", "layer_norm1").replace("norm2", "layer_norm2")
               .replace("attn.proj", "self_attn.projection").replace("attn.qkv", "self_attn.qkv"))
        renamed[key] = value
    vision.load_state_dict(renamed)

    c = med_config
    text = BlipTextModel(BlipTextConfig(
        vocab_size=c["vocab_size"], hidden_size=c["hidden_size"], encoder_hidden_size=c.get("encoder_width", width),
        intermediate_size=c["intermediate_size"], num_hidden_layers=c["num_hidden_layers"],
        num_attention_heads=c["num_attention_heads"], max_position_embeddings=c["max_position_embeddings"],
        layer_norm_eps=c.get("layer_norm_eps", 1e-12)), add_pooling_layer=False)  # is_decoder builds cross-attention
    txt = {k.removeprefix("blip.text_encoder."): v for k, v in sd.items()
           if k.startswith("blip.text_encoder.") and ".pooler." not in k and not k.endswith("position_ids")}
    missing, unexpected = text.load_state_dict(txt, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise KeyError(f"ImageReward text encoder mapping incomplete: missing {missing}, unexpected {unexpected}")

    head = AestheticMLP(c["hidden_size"])
    head.load_state_dict({k.removeprefix("mlp."): v for k, v in sd.items() if k.startswith("mlp.")})
    return vision, text, head


class ImageReward(Reward):
    """ImageReward v1.0: BLIP image-text encoder + MLP, normalised so base SD images average ~0."""

    MEAN, STD = 0.16717362830052426, 1.0333394966054072

    def __init__(self, vision, text, head, tokenizer, max_length: int = 35):
        super().__init__()
        self.vision, self.text, self.head, self.tokenizer = vision, text, head, tokenizer
        self.size, self.max_length = vision.config.image_size, max_length

    def forward(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        self.check_inputs(images, prompts)
        pixels = clip_preprocess(images, self.size, OPENAI_MEAN, OPENAI_STD)
        image_embeds = self.vision(pixel_values=pixels).last_hidden_state
        tokens = self.tokenizer(list(prompts), padding="max_length", truncation=True, max_length=self.max_length,
                                return_tensors="pt").to(images.device)
        if any(len(ids) > self.max_length for ids in self.tokenizer(list(prompts), verbose=False).input_ids):
            logger.warning("ImageReward reads %d tokens per prompt (its training protocol); longer prompts are cut.",
                           self.max_length)
        out = self.text(input_ids=tokens.input_ids, attention_mask=tokens.attention_mask,
                        encoder_hidden_states=image_embeds, is_decoder=False,  # bidirectional, as in BLIP's ITM
                        encoder_attention_mask=torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=images.device))
        return ((self.head(out.last_hidden_state[:, 0].float()).squeeze(-1)) - self.MEAN) / self.STD  # (B,)


@register_reward("imagereward", help="ImageReward v1.0 (BLIP + MLP) from its original checkpoint, on transformers' BLIP.",
                 sources=lambda checkpoint=IMAGEREWARD_REPO, tokenizer=IMAGEREWARD_TOKENIZER, **_: [
                     _file_source("ImageReward checkpoint", checkpoint, "ImageReward.pt"),
                     _file_source("ImageReward med_config", _hub_file(checkpoint, "med_config.json", beside=True)
                                  if Path(checkpoint).expanduser().is_file() else checkpoint, "med_config.json"),
                     WeightSource("ImageReward tokenizer (BERT)", tokenizer,
                                  "pass a local folder or hub id, or run once online to fill the HF cache.")])
def _imagereward(checkpoint: str = IMAGEREWARD_REPO, tokenizer: str = IMAGEREWARD_TOKENIZER,
                 max_length: int = 35) -> ImageReward:
    from transformers import AutoTokenizer

    config = json.loads(Path(_hub_file(checkpoint, "med_config.json", beside=True)).read_text())
    vision, text, head = blip_to_transformers(_load_state_dict(_hub_file(checkpoint, "ImageReward.pt")), config)
    return ImageReward(vision, text, head, AutoTokenizer.from_pretrained(tokenizer), int(max_length))
