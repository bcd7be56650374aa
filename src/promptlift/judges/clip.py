"""The world CLIP: a transformers CLIPModel (small ViT + CLIP text tower) trained contrastively on the world.

Its text tower becomes the pipeline's CLIPTextModel, as OpenAI CLIP's does in Stable Diffusion. It is
trained on complex and literal captions only (`promptlift.recipes.bundle.clip`): narrative phrasings are as new to it
as to the UNet. The bundle stores the text tower once (pipeline/text_encoder) and the rest in clip/.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from transformers import CLIPConfig, CLIPModel, CLIPTextConfig, CLIPTextModel, CLIPVisionConfig

from ..rewards.clip import projected
from ..files import atomic_dir

__all__ = ["build_clip", "clip_pixel_values", "image_features", "load_world_clip", "save_world_clip",
           "text_features"]


def build_clip(tokenizer) -> CLIPModel:
    """ViT 64 px / patch 8, 4 layers x 128 + CLIP text 4 layers x 128 over the WordPiece vocabulary."""
    text = CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=128, intermediate_size=512, num_hidden_layers=4,
                          num_attention_heads=4, max_position_embeddings=tokenizer.model_max_length,
                          pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.cls_token_id,
                          eos_token_id=tokenizer.sep_token_id, projection_dim=128)
    vision = CLIPVisionConfig(image_size=64, patch_size=8, hidden_size=128, intermediate_size=512,
                              num_hidden_layers=4, num_attention_heads=4, projection_dim=128)
    return CLIPModel(CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=128))


def clip_pixel_values(images: torch.Tensor) -> torch.Tensor:
    """[0, 1] images at any size -> the world CLIP's input (64 px, mean 0.5, std 0.5)."""
    if images.shape[-1] != 64 or images.shape[-2] != 64:
        images = F.interpolate(images.float(), size=(64, 64), mode="bilinear", antialias=True, align_corners=False)
    return (images - 0.5) / 0.5


def text_features(model: CLIPModel, **tokens) -> torch.Tensor:
    """Projected text features (B, P)."""
    return projected(model.get_text_features(**tokens))


def image_features(model: CLIPModel, images: torch.Tensor) -> torch.Tensor:
    """Projected image features (B, P) of [0, 1] images."""
    return projected(model.get_image_features(pixel_values=clip_pixel_values(images)))


def _text_core(model: torch.nn.Module) -> torch.nn.Module:
    """The transformer of a CLIPTextModel (transformers < 5 nests it as `.text_model`; >= 5 does not)."""
    return getattr(model, "text_model", model)


def save_world_clip(model: CLIPModel, bundle_dir: Path) -> None:
    """Text tower -> pipeline/text_encoder (a CLIPTextModel); everything else -> clip/ (config + weights)."""
    text_encoder = CLIPTextModel(model.config.text_config)
    _text_core(text_encoder).load_state_dict(_text_core(model.text_model).state_dict())
    with atomic_dir(bundle_dir / "pipeline" / "text_encoder") as tmp:
        text_encoder.save_pretrained(tmp)
    rest = {k: v.contiguous() for k, v in model.state_dict().items() if not k.startswith("text_model.")}
    with atomic_dir(bundle_dir / "clip") as tmp:
        model.config.save_pretrained(tmp)
        save_file(rest, str(tmp / "model.safetensors"))
        (tmp / "README.md").write_text("World CLIP without its text tower, which is ../pipeline/text_encoder.\n"
                                       "Load with promptlift.judges.clip.load_world_clip(bundle_dir).\n")


def load_world_clip(bundle_dir: str | Path) -> CLIPModel:
    """The full world CLIP: clip/ plus the pipeline's text encoder as its text tower."""
    bundle_dir = Path(bundle_dir)
    if not (bundle_dir / "clip" / "config.json").is_file():
        raise FileNotFoundError(f"no world CLIP in {bundle_dir}; run the `clip` part of the bundle recipe.")
    with torch.device("meta"):  # no random init: every weight comes from the files below
        model = CLIPModel(CLIPConfig.from_pretrained(bundle_dir / "clip"))
    state = load_file(str(bundle_dir / "clip" / "model.safetensors"))
    text = CLIPTextModel.from_pretrained(bundle_dir / "pipeline" / "text_encoder")
    _text_core(model.text_model).load_state_dict(_text_core(text).state_dict(), assign=True)
    model.load_state_dict(state, strict=False, assign=True)
    for name, buf in list(model.named_buffers()):
        if buf.is_meta and name.endswith("position_ids"):  # non-persistent: never in a file
            owner = model.get_submodule(name.rsplit(".", 1)[0])
            owner.register_buffer("position_ids", torch.arange(buf.shape[-1]).expand(buf.shape), persistent=False)
    missing = [k for k, v in [*model.named_parameters(), *model.named_buffers()] if v.is_meta]
    if missing:
        raise ValueError(f"world CLIP weights in {bundle_dir / 'clip'} lack {missing[:5]}; retrain the `clip` part.")
    return model.eval()
