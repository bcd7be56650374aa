"""Training batches rendered on the fly from world seeds, plus the augmentations the judges train with.

Batch `index` of a stream is a pure function of (base_seed, index): a run resumed at step k sees
exactly the batches an uninterrupted run would, and no dataset has to fit in memory or on disk.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .render import render
from .scene import ATTRIBUTES, Quality, Scene, sample_scene, scene_seed

__all__ = ["WorldBatch", "world_batch", "attribute_targets", "blur", "augment_for_judges", "object_mask"]


class WorldBatch(dict):
    """{"images": (B, 3, H, W) float in [0, 1], "scenes": list[Scene]}."""

    @property
    def images(self) -> torch.Tensor:
        return self["images"]

    @property
    def scenes(self) -> list[Scene]:
        return self["scenes"]


def world_batch(index: int, batch_size: int, base_seed: int, size: int = 64, quality: Quality | None = None) -> WorldBatch:
    """Batch `index`: scenes scene_seed(base_seed, index * batch_size + j), rendered at `size`."""
    scenes = [sample_scene(scene_seed(base_seed, index * batch_size + j), quality=quality) for j in range(batch_size)]
    arr = np.stack([render(s, size) for s in scenes])  # (B, H, W, 3) uint8
    images = torch.from_numpy(arr).permute(0, 3, 1, 2).float().div_(255.0)
    return WorldBatch(images=images, scenes=scenes)


def attribute_targets(scenes: list[Scene]) -> dict[str, torch.Tensor]:
    """Class indices per attribute head: name -> (B,) long."""
    return {name: torch.tensor([values.index(getattr(s, name)) for s in scenes]) for name, values in ATTRIBUTES.items()}


def object_mask(scenes: list[Scene], size: int) -> torch.Tensor:
    """(B, 1, H, W) float: 1 inside the objects' boxes (a little enlarged), else 0."""
    mask = torch.zeros(len(scenes), 1, size, size)
    for i, s in enumerate(scenes):
        for x0, y0, x1, y1 in s.boxes:
            a, b = max(0, int(x0 * size) - 1), min(size, int(np.ceil(x1 * size)) + 1)
            c, d = max(0, int(y0 * size) - 1), min(size, int(np.ceil(y1 * size)) + 1)
            mask[i, 0, c:d, a:b] = 1.0
    return mask


def blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (B, C, H, W) images; differentiable."""
    if sigma <= 0:
        return images
    radius = max(1, int(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    k = torch.exp(-(x**2) / (2 * sigma**2))
    k = k / k.sum()
    c = images.shape[1]
    images = F.conv2d(F.pad(images, (radius, radius, 0, 0), mode="replicate"), k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(F.pad(images, (0, 0, radius, radius), mode="replicate"), k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def augment_for_judges(images: torch.Tensor, generator: torch.Generator, chunks: int = 4) -> torch.Tensor:
    """Random blur (sigma 0-1.2), noise (std 0-0.08) and brightness (+-6 %) per chunk, so judges measure content."""
    out = []
    for part in images.chunk(chunks):
        r = torch.rand(4, generator=generator).tolist()
        if r[0] < 0.5:
            part = blur(part, 1.2 * r[1])
        if r[2] < 0.5:
            part = part + torch.randn(part.shape, generator=generator) * 0.08 * r[3]
        part = part * (1 + 0.12 * (torch.rand(1, generator=generator).item() - 0.5))
        out.append(part.clamp(0, 1))
    return torch.cat(out)
