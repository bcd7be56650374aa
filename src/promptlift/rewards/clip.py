"""CLIP-family rewards on transformers' CLIPModel: CLIP score, PickScore, and the LAION aesthetic predictor.

Each tokenises with its own tokenizer and preprocesses images in torch (differentiable). Prompts longer
than the text tower's limit are never cut silently: they are encoded in windows and the normalised
window embeddings are averaged, weighted by their token counts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .base import Reward, WeightSource, clip_preprocess, register_reward

__all__ = ["CLIPScore", "PickScore", "LaionAesthetic", "encode_text_windows", "load_clip", "projected"]


def projected(out) -> torch.Tensor:
    """CLIP features as a tensor (transformers < 5 returns one; >= 5 returns an output with pooler_output)."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output

CLIP_L14 = "openai/clip-vit-large-patch14"
PICKSCORE_MODEL = "yuvalkirstain/PickScore_v1"
PICKSCORE_PROCESSOR = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
LAION_AESTHETIC_URL = ("https://github.com/christophschuhmann/improved-aesthetic-predictor/raw/main/"
                       "sac+logos+ava1-l14-linearMSE.pth")
LAION_AESTHETIC_FILE = Path("~/.cache/promptlift/sac+logos+ava1-l14-linearMSE.pth")


def load_clip(model: str, processor: str | None = None):
    """(CLIPModel, tokenizer, image processor) from a hub id or local folder."""
    from transformers import AutoProcessor, CLIPModel

    proc = AutoProcessor.from_pretrained(processor or model)
    return CLIPModel.from_pretrained(model), proc.tokenizer, proc.image_processor


def _image_settings(image_processor) -> tuple[int, list[float], list[float]]:
    crop = image_processor.crop_size
    size = crop["height"] if isinstance(crop, dict) else getattr(crop, "height", None) or crop
    return int(size), list(image_processor.image_mean), list(image_processor.image_std)


def encode_text_windows(model, tokenizer, prompts: Sequence[str]) -> torch.Tensor:
    """Normalised text features (B, P); a prompt over the limit is encoded in windows, none of it dropped."""
    limit = tokenizer.model_max_length
    body = limit - 2
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.cls_token_id
    end = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
    feats = []
    for prompt in prompts:
        ids = tokenizer(prompt, add_special_tokens=False, truncation=False, verbose=False).input_ids
        windows = [ids[i : i + body] for i in range(0, max(1, len(ids)), body)]
        batch = [[start, *w, end] for w in windows]
        width = max(len(b) for b in batch)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        input_ids = torch.tensor([b + [pad] * (width - len(b)) for b in batch])
        mask = torch.tensor([[1] * len(b) + [0] * (width - len(b)) for b in batch])
        f = F.normalize(projected(model.get_text_features(input_ids=input_ids.to(model.device),
                                                          attention_mask=mask.to(model.device))), dim=-1)
        weights = torch.tensor([len(w) for w in windows], dtype=f.dtype, device=f.device)
        feats.append(F.normalize((f * weights[:, None]).sum(0), dim=-1))
    return torch.stack(feats)  # (B, P)


class _CLIPReward(Reward):
    """Shared parts: a frozen CLIPModel, its tokenizer and its image preprocessing."""

    def __init__(self, model, tokenizer, image_processor):
        super().__init__()
        self.model, self.tokenizer = model, tokenizer
        self.size, self.mean, self.std = _image_settings(image_processor)

    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        pixels = clip_preprocess(images, self.size, self.mean, self.std).to(self.model.dtype)
        return F.normalize(projected(self.model.get_image_features(pixel_values=pixels)), dim=-1)  # (B, P)

    def text_features(self, prompts: Sequence[str]) -> torch.Tensor:
        return encode_text_windows(self.model, self.tokenizer, prompts)  # (B, P)


class CLIPScore(_CLIPReward):
    """100 x cosine(image, prompt) under a CLIP model (Hessel et al. 2021 without the clamp)."""

    score_range = (-100.0, 100.0)

    def forward(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        self.check_inputs(images, prompts)
        return 100.0 * (self.image_features(images) * self.text_features(prompts)).sum(-1)  # (B,)


class PickScore(_CLIPReward):
    """PickScore (Kirstain et al. 2023): logit_scale x cosine under the PickScore CLIP-H.

    `paper_protocol=True` returns, per image, the mean over the batch x batch score matrix, as
    TextCraftor's evaluation computed it; the default is the standard per-pair score.
    """

    def __init__(self, model, tokenizer, image_processor, paper_protocol: bool = False):
        super().__init__(model, tokenizer, image_processor)
        self.paper_protocol = paper_protocol

    def forward(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        self.check_inputs(images, prompts)
        scale = self.model.logit_scale.exp()
        img, txt = self.image_features(images), self.text_features(prompts)
        if self.paper_protocol:
            return (scale * txt @ img.t()).mean(0)  # (B,) mean over every prompt of the batch
        return scale * (img * txt).sum(-1)  # (B,)


class AestheticMLP(nn.Module):
    """The improved-aesthetic-predictor head: 768 -> 1024 -> 128 -> 64 -> 16 -> 1 (dropouts between)."""

    def __init__(self, dim: int = 768):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(dim, 1024), nn.Dropout(0.2), nn.Linear(1024, 128), nn.Dropout(0.2),
            nn.Linear(128, 64), nn.Dropout(0.1), nn.Linear(64, 16), nn.Linear(16, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class LaionAesthetic(_CLIPReward):
    """LAION aesthetic predictor v2 (Schuhmann 2022): an MLP on normalised CLIP ViT-L/14 image embeddings."""

    def __init__(self, model, tokenizer, image_processor, head: AestheticMLP):
        super().__init__(model, tokenizer, image_processor)
        self.head = head

    def forward(self, images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
        self.check_inputs(images, prompts)
        return self.head(self.image_features(images).to(self.head.layers[0].weight.dtype)).squeeze(-1)  # (B,)


def _hub(what: str, location: str) -> WeightSource:
    return WeightSource(what, location, "pass a local folder or hub id, or run once online to fill the HF cache.")


@register_reward("clip-score", help="100 x CLIP cosine(image, prompt) (transformers CLIPModel); long prompts in windows.",
                 sources=lambda model=CLIP_L14, **_: [_hub("CLIP model", model)])
def _clip_score(model: str = CLIP_L14) -> CLIPScore:
    return CLIPScore(*load_clip(model))


@register_reward("pickscore", help="PickScore v1 (CLIP-H fine-tuned on Pick-a-Pic); paper_protocol for TextCraftor's batch mean.",
                 sources=lambda model=PICKSCORE_MODEL, processor=PICKSCORE_PROCESSOR, **_: [
                     _hub("PickScore model", model), _hub("PickScore processor", processor)])
def _pickscore(model: str = PICKSCORE_MODEL, processor: str = PICKSCORE_PROCESSOR, paper_protocol: bool = False) -> PickScore:
    return PickScore(*load_clip(model, processor), paper_protocol=paper_protocol)


@register_reward("laion-aesthetic", help="LAION aesthetic predictor v2: MLP on CLIP ViT-L/14 image embeddings (weights file).",
                 sources=lambda weights=str(LAION_AESTHETIC_FILE), clip=CLIP_L14, **_: [
                     WeightSource("aesthetic MLP weights", str(Path(weights).expanduser()),
                                  f"download {LAION_AESTHETIC_URL} there, or pass weights=PATH."),
                     _hub("CLIP ViT-L/14", clip)])
def _laion_aesthetic(weights: str = str(LAION_AESTHETIC_FILE), clip: str = CLIP_L14) -> LaionAesthetic:
    model, tokenizer, image_processor = load_clip(clip)
    head = AestheticMLP(model.config.projection_dim)
    head.load_state_dict(torch.load(Path(weights).expanduser(), map_location="cpu", weights_only=True))
    return LaionAesthetic(model, tokenizer, image_processor, head)
