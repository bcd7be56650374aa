"""Aspect-ratio buckets: train on images of mixed sizes at about one pixel count, each batch from one bucket.

Each image goes to the bucket whose sides (multiples of 64) keep its aspect ratio at about `resolution`² pixels; it
is resized to cover the bucket and centre-cropped (the crop's top-left corner is kept: SDXL conditions on it).
Batches are drawn within a bucket, as kohya's and SimpleTuner's trainers do, and batch `i` is a pure function of
`i` and the seed, so a resumed run draws the batches the uninterrupted one would.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

__all__ = ["bucket_batch", "bucket_size", "fit_to_bucket"]


def bucket_size(width: int, height: int, resolution: int, multiple: int = 64) -> tuple[int, int]:
    """(width, height) of the bucket of a `width` x `height` image: its aspect ratio, about `resolution`² pixels,
    sides multiples of `multiple` (at least one `multiple`)."""
    if width < 1 or height < 1:
        raise ValueError(f"an image of {width} x {height} pixels has no bucket.")
    scale = math.sqrt(resolution * resolution / (width * height))
    return tuple(max(multiple, round(side * scale / multiple) * multiple) for side in (width, height))


def fit_to_bucket(image: Image.Image, size: tuple[int, int]) -> tuple[Image.Image, tuple[int, int]]:
    """`image` resized to cover `size` (width, height), aspect kept, then centre-cropped to it; and the crop's
    (top, left) in the resized image."""
    width, height = size
    scale = max(width / image.width, height / image.height)
    resized = image.resize((max(width, round(image.width * scale)), max(height, round(image.height * scale))),
                           Image.Resampling.LANCZOS)
    top, left = (resized.height - height) // 2, (resized.width - width) // 2
    return resized.crop((left, top, left + width, top + height)), (top, left)


def bucket_batch(i: int, buckets: list[tuple[int, int]], batch: int, seed: int) -> list[int]:
    """The sample indices of batch `i`: all from one bucket (`buckets[k]` is sample k's). Each epoch shuffles every
    bucket's samples and the order of its batches (seeded by the seed and the epoch); a bucket's last batch may be
    smaller."""
    members: dict[tuple[int, int], list[int]] = {}
    for k, size in enumerate(buckets):
        members.setdefault(tuple(size), []).append(k)
    groups = [members[size] for size in sorted(members)]
    per_epoch = sum(math.ceil(len(g) / batch) for g in groups)
    epoch, position = divmod(i, per_epoch)
    rng = np.random.default_rng([seed, epoch])
    batches = [[group[j] for j in order[start:start + batch]]
               for group in groups for order in [rng.permutation(len(group))] for start in range(0, len(group), batch)]
    return batches[int(rng.permutation(per_epoch)[position])]
