"""Self-contained HTML pieces shared by every report: page shell, inline images, SVG histograms."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np

__all__ = ["fmt", "histogram_svg", "img_tag", "page"]

_STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222} h1{font-size:22px} h2{font-size:17px;margin-top:28px}
table{border-collapse:collapse;font-size:13px} td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f3f3f3} td:first-child,th:first-child{text-align:left}
.grid{display:flex;flex-wrap:wrap;gap:10px} .cell{width:150px;font-size:11px} .cell img{width:150px;image-rendering:pixelated}
.pair{display:flex;gap:6px;align-items:flex-start;margin:6px 0;font-size:12px} .pair img{width:128px;image-rendering:pixelated}
.win{outline:3px solid #2a2} .plots{display:flex;flex-wrap:wrap;gap:16px}
"""


def img_tag(path: Path, css: str = "") -> str:
    """An <img> with the PNG file inlined as base64."""
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img class="{css}" src="data:image/png;base64,{data}">'


def fmt(x: float) -> str:
    return f"{x:.4g}"


def histogram_svg(values: list[float], title: str, bins: int = 20, width: int = 320, height: int = 160) -> str:
    """A histogram as an inline SVG string."""
    counts, edges = np.histogram(np.asarray(values, float), bins=bins)
    top = max(int(counts.max()), 1)
    bw = (width - 40) / bins
    bars = "".join(
        f'<rect x="{30 + i * bw:.1f}" y="{height - 25 - (c / top) * (height - 45):.1f}" width="{bw - 1:.1f}" '
        f'height="{(c / top) * (height - 45):.1f}" fill="#4a7fc1"><title>{fmt(edges[i])}..{fmt(edges[i + 1])}: {c}</title></rect>'
        for i, c in enumerate(counts))
    return (f'<svg width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
            f'<text x="{width / 2}" y="14" text-anchor="middle" font-size="12">{html.escape(title)}</text>{bars}'
            f'<text x="30" y="{height - 8}" font-size="10">{fmt(edges[0])}</text>'
            f'<text x="{width - 10}" y="{height - 8}" font-size="10" text-anchor="end">{fmt(edges[-1])}</text></svg>')


def page(title: str, body: str) -> str:
    """A complete self-contained HTML page."""
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body>{body}</body></html>")


