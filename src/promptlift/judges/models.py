"""The world's judges: an attribute judge and two aesthetic predictors of different design.

Each is a small CNN that takes images (B, 3, H, W) in [0, 1] at any size (resized to 64 px inside), is
differentiable, and saves/loads in the hub format (config.json + model.safetensors).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from ..world.scene import ATTRIBUTES

__all__ = ["AttributeJudge", "AestheticResNet", "AestheticVGG", "JUDGE_CLASSES", "prepare"]

HEADS = {name: len(values) for name, values in ATTRIBUTES.items()}


def prepare(images: torch.Tensor, size: int = 64) -> torch.Tensor:
    """Resize to `size` and normalise [0, 1] images to roughly zero mean, unit scale."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"`images` must be (B, 3, H, W) in [0, 1], got shape {tuple(images.shape)}.")
    if images.shape[-1] != size or images.shape[-2] != size:
        # float32: antialiased resizing has no half-precision CPU kernel (a trainer under bf16 autocast hands bf16 in)
        images = F.interpolate(images.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return (images - 0.5) / 0.25


def _down(cin: int, cout: int, norm: str) -> nn.Sequential:
    """conv 3x3 stride 2 -> norm -> SiLU -> conv 3x3 -> norm -> SiLU."""
    def make_norm(c):
        return nn.GroupNorm(8, c) if norm == "group" else nn.BatchNorm2d(c)

    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=2, padding=1), make_norm(cout), nn.SiLU(),
        nn.Conv2d(cout, cout, 3, padding=1), make_norm(cout), nn.SiLU(),
    )


class AttributeJudge(nn.Module, PyTorchModelHubMixin):
    """Predicts setting, kind, colour and count of a world image (one softmax head each)."""

    def __init__(self, width: int = 32):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(3, w, 3, padding=1), nn.GroupNorm(8, w), nn.SiLU(),
            _down(w, 2 * w, "group"), _down(2 * w, 4 * w, "group"), _down(4 * w, 8 * w, "group"),
            _down(8 * w, 8 * w, "group"),
        )
        self.trunk = nn.Sequential(nn.Flatten(), nn.Linear(8 * w * 16, 256), nn.SiLU(), nn.Dropout(0.1))
        self.heads = nn.ModuleDict({name: nn.Linear(256, n) for name, n in HEADS.items()})

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.trunk(self.features(prepare(images)))  # (B, 256)
        return {name: head(h) for name, head in self.heads.items()}  # name -> (B, classes)

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> dict[str, list]:
        """Attribute values (as in the world's vocabulary) for each image."""
        logits = self(images)
        return {name: [ATTRIBUTES[name][i] for i in logits[name].argmax(-1).tolist()] for name in HEADS}


class AestheticResNet(nn.Module, PyTorchModelHubMixin):
    """Aesthetic score (1-10) from a residual CNN with GroupNorm and mean+max pooling (design A)."""

    def __init__(self, width: int = 24):
        super().__init__()
        w = width
        self.stem = nn.Sequential(nn.Conv2d(3, w, 3, padding=1), nn.GroupNorm(8, w), nn.SiLU())
        self.stages = nn.ModuleList([_down(w, 2 * w, "group"), _down(2 * w, 4 * w, "group"), _down(4 * w, 4 * w, "group")])
        self.skips = nn.ModuleList([nn.Conv2d(w, 2 * w, 1, stride=2), nn.Conv2d(2 * w, 4 * w, 1, stride=2),
                                    nn.Conv2d(4 * w, 4 * w, 1, stride=2)])
        self.head = nn.Sequential(nn.Linear(8 * w, 128), nn.SiLU(), nn.Linear(128, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        h = self.stem(prepare(images))
        for stage, skip in zip(self.stages, self.skips):
            h = stage(h) + skip(h)
        pooled = torch.cat([h.mean((2, 3)), h.amax((2, 3))], dim=1)  # (B, 8w)
        return 5.5 + self.head(pooled).squeeze(1)  # (B,)


class AestheticVGG(nn.Module, PyTorchModelHubMixin):
    """Aesthetic score (1-10) from a plain VGG-style CNN with BatchNorm and a flattened head (design B)."""

    def __init__(self, width: int = 32):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(3, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(),
            _down(w, w, "batch"), _down(w, 2 * w, "batch"), _down(2 * w, 2 * w, "batch"), _down(2 * w, 4 * w, "batch"),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(4 * w * 16, 64), nn.ReLU(), nn.Linear(64, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return 5.5 + self.head(self.features(prepare(images))).squeeze(1)  # (B,)


JUDGE_CLASSES = {"attributes": AttributeJudge, "aesthetic-reward": AestheticResNet, "aesthetic": AestheticVGG}
