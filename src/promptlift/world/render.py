"""Render a scene to pixels with numpy and Pillow: background, objects, then the quality factors.

Every attribute stays readable at 64 px: objects are >= 16 px with an outline that contrasts with
their fill, kinds have distinct silhouettes, and the setting has its own sky, ground and sun or moon.
The quality factors change how good the picture looks, not what it shows.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .scene import Scene

__all__ = ["COLOR_RGB", "render", "render_image"]

COLOR_RGB = {
    "red": (215, 35, 35),
    "orange": (245, 135, 20),
    "yellow": (245, 215, 30),
    "green": (35, 150, 55),
    "blue": (35, 85, 215),
    "purple": (140, 55, 185),
    "white": (250, 250, 250),
    "black": (22, 22, 22),
}
# (sky top, sky at the horizon, ground) per setting
_PALETTE = {
    "day": ((95, 160, 235), (185, 220, 250), (150, 195, 105)),
    "sunset": ((120, 60, 120), (250, 150, 80), (95, 62, 70)),
    "night": ((8, 12, 40), (40, 48, 95), (62, 68, 100)),
    "snow": ((175, 190, 210), (225, 232, 240), (228, 234, 244)),
    "beach": ((105, 180, 240), (190, 225, 250), (232, 208, 150)),
}
# A clashing colour cast per setting (added to the background's chroma, brightness kept) when
# harmony is low; each is chosen so that no setting comes to look like another.
_CLASH = {"day": (-25, 25, 50), "sunset": (-40, 30, 20), "night": (-15, 35, -10), "snow": (35, -30, 20),
          "beach": (40, -40, 30)}
_HORIZON = 0.45
_SEA = (45, 115, 195)
_TRUNK = (95, 60, 30)
_STEM = (45, 125, 45)
_CLUTTER = ((110, 100, 90), (140, 130, 120), (80, 70, 60), (170, 160, 150))


def _mix(a, b, t: float) -> tuple[int, int, int]:
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b))


@lru_cache(maxsize=64)
def _sky_and_ground(setting: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(gradient background, flat background), each (size, size, 3) float32."""
    top, horizon, ground = (np.array(c, np.float32) for c in _PALETTE[setting])
    y = (np.arange(size, dtype=np.float32) + 0.5) / size
    hy = int(round(_HORIZON * size))
    t = (y[:hy] / _HORIZON)[:, None]
    grad = np.empty((size, size, 3), np.float32)
    grad[:hy] = (top + (horizon - top) * t)[:, None, :]
    depth = ((y[hy:] - _HORIZON) / (1 - _HORIZON))[:, None]
    grad[hy:] = (ground * (0.92 + 0.16 * depth))[:, None, :]  # ground lighter towards the viewer
    flat = np.empty_like(grad)
    flat[:hy] = (top + horizon) / 2
    flat[hy:] = ground
    if setting == "beach":  # a band of sea between sky and sand
        sea = slice(hy, hy + max(2, size // 10))
        grad[sea] = np.array(_SEA, np.float32)
        flat[sea] = np.array(_SEA, np.float32)
    return grad, flat


@lru_cache(maxsize=64)
def _texture(setting: str, size: int) -> np.ndarray:
    """A fixed ground/sky texture per setting, (2*size, 2*size) float32 in [-1, 1]; rolled per scene."""
    rng = np.random.default_rng(sum(map(ord, setting)))
    n = 2 * size
    tex = np.zeros((n, n), np.float32)
    if setting in ("day", "sunset"):  # grass blades: short vertical strokes
        for _ in range(n * n // 12):
            x, y = rng.integers(n), rng.integers(n)
            tex[y : y + max(2, size // 24), x] = -1.0
    elif setting == "night":  # stars
        idx = rng.integers(0, n, size=(n * n // 40, 2))
        tex[idx[:, 0], idx[:, 1]] = 1.0
    elif setting == "snow":  # sparkles and drifts
        idx = rng.integers(0, n, size=(n * n // 25, 2))
        tex[idx[:, 0], idx[:, 1]] = -0.6
    else:  # sand grains
        idx = rng.integers(0, n, size=(n * n // 14, 2))
        tex[idx[:, 0], idx[:, 1]] = rng.choice([-1.0, 1.0], size=len(idx))
    return tex


def _background(scene: Scene, size: int, rng: np.random.Generator) -> np.ndarray:
    """Sky and ground (float32, (size, size, 3)) with lighting, texture (detail) and tint (harmony)."""
    q = scene.quality
    grad, flat = _sky_and_ground(scene.setting, size)
    bg = flat + (grad - flat) * q.lighting
    tex = _texture(scene.setting, size)
    oy, ox = rng.integers(size), rng.integers(size)
    tex = tex[oy : oy + size, ox : ox + size]
    hy = int(round(_HORIZON * size))
    if scene.setting == "night":
        bg[:hy] += (tex[:hy, :, None] * 200.0) * (0.25 + 0.75 * q.detail)  # stars are a setting cue
    else:
        bg[hy:] += tex[hy:, :, None] * (24.0 * q.detail)
    bg += np.array(_CLASH[scene.setting], np.float32) * (1.0 - q.harmony)
    return bg


def _draw_setting_cue(draw: ImageDraw.ImageDraw, setting: str, size: int, k: float) -> None:
    """The sun or moon: a setting cue drawn at every quality."""
    hy = _HORIZON * size
    if setting == "day":
        draw.ellipse([size * 0.78, size * 0.06, size * 0.78 + 9 * k, size * 0.06 + 9 * k], fill=(255, 240, 120))
    elif setting == "sunset":
        r = 7 * k
        draw.pieslice([size * 0.5 - r, hy - r, size * 0.5 + r, hy + r], 180, 360, fill=(255, 225, 120))
    elif setting == "night":
        x, y = size * 0.12, size * 0.06
        draw.ellipse([x, y, x + 8 * k, y + 8 * k], fill=(240, 240, 215))
        draw.ellipse([x + 3 * k, y - 1 * k, x + 11 * k, y + 7 * k], fill=(15, 20, 50))  # crescent


def _draw_clutter(draw: ImageDraw.ImageDraw, clutter: float, size: int, k: float, rng) -> None:
    """Small grey-brown specks and scratches: distractions that never look like an object."""
    n = int(round(30 * clutter**1.5))
    for _ in range(n):
        x, y = rng.uniform(0, size, 2)
        s = rng.uniform(1, 3.2) * k
        color = _CLUTTER[rng.integers(len(_CLUTTER))]
        if rng.random() < 0.5:
            draw.rectangle([x, y, x + s, y + s], fill=color)
        else:
            draw.line([x, y, x + rng.uniform(-4, 4) * k, y + rng.uniform(-4, 4) * k], fill=color, width=max(1, int(k)))


def _tones(color: str, lighting: float) -> tuple[tuple, tuple, tuple, tuple]:
    """(base, light, dark, outline) for an object colour; light and dark spread with the lighting."""
    base = COLOR_RGB[color]
    light = _mix(base, (255, 255, 255), 0.45 * lighting)
    dark = _mix(base, (0, 0, 0), 0.40 * lighting)
    if color == "white":
        dark = _mix(base, (120, 120, 140), 0.55 * lighting)
    outline = (165, 165, 175) if color == "black" else (25, 25, 30)
    return base, light, dark, outline


def _draw_ball(d, box, tones, q, k):
    x0, y0, x1, y1 = box
    base, light, dark, outline = tones
    s = min(x1 - x0, y1 - y0)
    cx = (x0 + x1) / 2
    b = [cx - s / 2, y1 - s, cx + s / 2, y1]
    d.ellipse(b, fill=dark, outline=outline, width=max(1, int(k)))
    inset = s * 0.12
    d.ellipse([b[0] + 1, b[1] + 1, b[2] - inset, b[3] - inset], fill=base)
    if q.detail > 0.35:  # a seam around the ball
        d.arc([b[0] + s * 0.1, b[1] + s * 0.3, b[2] - s * 0.1, b[3] + s * 0.2], 200, 340, fill=outline, width=max(1, int(k)))
    if q.lighting > 0.2:
        h = s * 0.22
        d.ellipse([b[0] + s * 0.2, b[1] + s * 0.18, b[0] + s * 0.2 + h, b[1] + s * 0.18 + h * 0.8], fill=light)


def _draw_box(d, box, tones, q, k):
    x0, y0, x1, y1 = box
    base, light, dark, outline = tones
    w = x1 - x0
    s = min(w, y1 - y0) * 0.76
    off = s * 0.3
    fx0, fy1 = x0 + (w - s - off) / 2, y1
    fx1, fy0 = fx0 + s, y1 - s
    lw = max(1, int(k))
    d.polygon([(fx0, fy0), (fx0 + off, fy0 - off), (fx1 + off, fy0 - off), (fx1, fy0)], fill=light, outline=outline, width=lw)
    d.polygon([(fx1, fy0), (fx1 + off, fy0 - off), (fx1 + off, fy1 - off), (fx1, fy1)], fill=dark, outline=outline, width=lw)
    d.rectangle([fx0, fy0, fx1, fy1], fill=base, outline=outline, width=lw)
    if q.detail > 0.35:  # packing tape over the lid, and a shipping label
        cx = (fx0 + fx1) / 2
        d.line([cx, fy0, cx + off, fy0 - off], fill=outline, width=lw)
        d.rectangle([fx0 + s * 0.2, fy0 + s * 0.25, fx0 + s * 0.5, fy0 + s * 0.45], fill=(240, 235, 215), outline=outline)


def _draw_tree(d, box, tones, q, k):
    x0, y0, x1, y1 = box
    base, light, dark, outline = tones
    w, h = x1 - x0, y1 - y0
    cx = (x0 + x1) / 2
    lw = max(1, int(k))
    tw = max(3 * k, w * 0.2)
    d.rectangle([cx - tw / 2, y1 - h * 0.28, cx + tw / 2, y1], fill=_TRUNK, outline=outline, width=lw)
    for top, bottom, half in ((y0, y0 + h * 0.55, w * 0.36), (y0 + h * 0.25, y1 - h * 0.22, w * 0.5)):
        d.polygon([(cx, top), (cx - half, bottom), (cx + half, bottom)], fill=base, outline=outline, width=lw)
        if q.lighting > 0.2:
            d.polygon([(cx, top + 2 * k), (cx + 1, bottom - 1), (cx + half - 2 * k, bottom - 1)], fill=dark)
    if q.detail > 0.35:  # needles
        for i in range(4):
            yy = y0 + h * (0.35 + 0.1 * i)
            d.line([cx - w * 0.15, yy, cx - w * 0.05, yy + 2 * k], fill=light, width=lw)


def _draw_house(d, box, tones, q, k):
    x0, y0, x1, y1 = box
    base, light, dark, outline = tones
    w, h = x1 - x0, y1 - y0
    lw = max(1, int(k))
    bx0, bx1, by0 = x0 + w * 0.1, x1 - w * 0.1, y0 + h * 0.45
    roof = _mix(base, (0, 0, 0), 0.45)
    d.rectangle([bx0, by0, bx1, y1], fill=base, outline=outline, width=lw)
    if q.lighting > 0.2:
        d.rectangle([bx0 + (bx1 - bx0) * 0.62, by0 + 1, bx1 - 1, y1 - 1], fill=dark)
    d.polygon([(x0, by0), ((x0 + x1) / 2, y0), (x1, by0)], fill=roof, outline=outline, width=lw)
    if q.detail > 0.35:  # door and a lit window
        dw = (bx1 - bx0) * 0.24
        d.rectangle([bx0 + dw * 0.6, y1 - (y1 - by0) * 0.55, bx0 + dw * 1.6, y1], fill=(70, 45, 25), outline=outline)
        d.rectangle([bx1 - dw * 1.7, by0 + (y1 - by0) * 0.2, bx1 - dw * 0.6, by0 + (y1 - by0) * 0.48],
                    fill=(255, 235, 140), outline=outline)
    if q.detail > 0.65:  # chimney
        d.rectangle([x1 - w * 0.3, y0 + h * 0.12, x1 - w * 0.2, y0 + h * 0.3], fill=roof, outline=outline)


def _draw_boat(d, box, tones, q, k):
    x0, y0, x1, y1 = box
    base, light, dark, outline = tones
    w, h = x1 - x0, y1 - y0
    lw = max(1, int(k))
    hull_top = y1 - h * 0.36
    cx = (x0 + x1) / 2
    d.line([cx, y0 + h * 0.02, cx, hull_top], fill=outline, width=lw)  # mast
    d.polygon([(cx + lw, y0 + h * 0.06), (cx + lw, hull_top - h * 0.06), (x1 - w * 0.06, hull_top - h * 0.06)],
              fill=light, outline=outline, width=lw)  # sail in the boat's colour
    if q.detail > 0.35:  # a jib
        d.polygon([(cx - lw, y0 + h * 0.2), (cx - lw, hull_top - h * 0.06), (x0 + w * 0.2, hull_top - h * 0.06)],
                  fill=light, outline=outline, width=lw)
    d.polygon([(x0, hull_top), (x1, hull_top), (x1 - w * 0.18, y1), (x0 + w * 0.18, y1)], fill=base, outline=outline, width=lw)
    if q.lighting > 0.2:
        d.polygon([(x0 + w * 0.1, y1 - h * 0.14), (x1 - w * 0.1, y1 - h * 0.14), (x1 - w * 0.19, y1 - 1), (x0 + w * 0.19, y1 - 1)], fill=dark)
    if q.detail > 0.65:  # portholes
        for fx in (0.35, 0.5, 0.65):
            px, py = x0 + w * fx, hull_top + h * 0.1
            d.ellipse([px - k, py - k, px + k, py + k], fill=(235, 235, 235))


def _draw_flower(d, box, tones, q, k):
    x0, y0, x1, y1 = box
    base, light, dark, outline = tones
    w, h = x1 - x0, y1 - y0
    lw = max(1, int(k))
    cx = (x0 + x1) / 2
    r = min(w, h) * 0.5  # head radius
    cy = y0 + r
    d.line([cx, cy, cx, y1], fill=_STEM, width=max(2, int(2 * k)))
    if q.detail > 0.35:  # leaves
        d.ellipse([cx, y1 - h * 0.3, cx + w * 0.28, y1 - h * 0.2], fill=_STEM)
        d.ellipse([cx - w * 0.28, y1 - h * 0.22, cx, y1 - h * 0.12], fill=_STEM)
    pr = r * 0.42
    for i in range(6):
        a = i * np.pi / 3
        px, py = cx + np.cos(a) * (r - pr), cy + np.sin(a) * (r - pr)
        d.ellipse([px - pr, py - pr, px + pr, py + pr], fill=dark if (q.lighting > 0.2 and i < 3) else base,
                  outline=outline, width=lw)
    centre = (150, 90, 25) if tones[0] == COLOR_RGB["yellow"] else (250, 210, 40)
    d.ellipse([cx - pr * 0.8, cy - pr * 0.8, cx + pr * 0.8, cy + pr * 0.8], fill=centre, outline=outline, width=lw)


_DRAW = {"ball": _draw_ball, "box": _draw_box, "tree": _draw_tree, "house": _draw_house, "boat": _draw_boat,
         "flower": _draw_flower}


def render_image(scene: Scene, size: int = 64) -> Image.Image:
    """The scene as an RGB PIL image of `size` x `size` pixels; the same scene gives the same bytes."""
    if size < 32 or size % 8:
        raise ValueError(f"`size` must be a multiple of 8 and >= 32, got {size}.")
    rng = np.random.default_rng(scene.seed)
    k = size / 64.0
    q = scene.quality
    bg = _background(scene, size, rng)
    image = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    _draw_setting_cue(draw, scene.setting, size, k)
    _draw_clutter(draw, q.clutter, size, k, rng)
    tones = _tones(scene.color, q.lighting)
    boxes = [tuple(v * size for v in b) for b in scene.boxes]
    if q.lighting > 0.2:  # soft ground shadows
        shadow = _mix(_PALETTE[scene.setting][2], (0, 0, 0), 0.35 * q.lighting)
        for x0, _, x1, y1 in boxes:
            draw.ellipse([x0 + 2 * k, y1 - 2.5 * k, x1 + 3 * k, y1 + 2 * k], fill=shadow)
    for box in sorted(boxes, key=lambda b: b[3]):  # back row first
        _DRAW[scene.kind](draw, box, tones, q, k)
    return _apply_artifacts(image, q.artifacts, k, rng)


def _apply_artifacts(image: Image.Image, artifacts: float, k: float, rng) -> Image.Image:
    """Blur, then sensor-like noise, both growing with `artifacts`."""
    radius = 1.3 * k * artifacts**1.5
    if radius > 0.2:
        image = image.filter(ImageFilter.GaussianBlur(radius))
    sigma = 24.0 * artifacts**1.5
    if sigma < 1.0:
        return image
    arr = np.asarray(image, dtype=np.float32) + rng.normal(0.0, sigma, (image.height, image.width, 1)).astype(np.float32)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def render(scene: Scene, size: int = 64) -> np.ndarray:
    """The scene as a (size, size, 3) uint8 array."""
    return np.asarray(render_image(scene, size))
