"""Images between PIL and tensors, grids of them, and the font of labelled sheets."""

from __future__ import annotations

import torch

__all__ = ["default_font", "image_grid", "images_to_tensor", "tensor_to_images"]


def tensor_to_images(images: torch.Tensor) -> list:
    """(N, 3, H, W) float in [0, 1] -> PIL images."""
    from PIL import Image

    arr = (images.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(a) for a in arr]


def image_grid(images, cols: int = 8, scale: int = 1):
    """A PIL grid of images given as a (N, 3, H, W) [0, 1] tensor or a list of PIL images."""
    from PIL import Image

    if isinstance(images, torch.Tensor):
        images = tensor_to_images(images)
    w, h = images[0].size
    rows = (len(images) + cols - 1) // cols
    grid = Image.new("RGB", (cols * w * scale, rows * h * scale), (255, 255, 255))
    for i, im in enumerate(images):
        grid.paste(im.resize((w * scale, h * scale), Image.NEAREST), ((i % cols) * w * scale, (i // cols) * h * scale))
    return grid


def images_to_tensor(images) -> torch.Tensor:
    """PIL images -> (B, 3, H, W) float in [0, 1]; images of another size are resized to the first one's."""
    import numpy as np

    size = images[0].size
    arr = np.stack([np.array(im.convert("RGB").resize(size) if im.size != size else im.convert("RGB")) for im in images])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float().div_(255.0)


def default_font(size: int):
    """Pillow's default font at `size` (one bitmap size before Pillow 10.1), for labelled sheets."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:
        return ImageFont.load_default()
