"""Self-contained HTML reports (images inlined as base64, plots as inline SVG): one per run, one per comparison."""

from __future__ import annotations

import html
import json
from pathlib import Path

from ..html import fmt, histogram_svg, img_tag as _img, page as _page
from ..files import atomic_write_text

__all__ = ["write_report", "write_compare_report"]

def _metric_table(summary: dict) -> str:
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{fmt(v['mean'])}</td><td>[{fmt(v['ci95'][0])}, {fmt(v['ci95'][1])}]</td></tr>"
                   for k, v in summary["metrics"].items())
    table = f"<table><tr><th>metric</th><th>mean</th><th>95 % CI</th></tr>{rows}</table>"
    if "semantic_accuracy" in summary:
        sem = summary["semantic_accuracy"]
        ci = summary["semantic_accuracy_ci95"]
        cells = "".join(f"<tr><td>{k}</td><td>{sem[k]:.3f}</td><td>[{ci[k][0]:.3f}, {ci[k][1]:.3f}]</td></tr>" for k in sem)
        table += f"<h2>Semantic accuracy (attribute judge)</h2><table><tr><th>attribute</th><th>accuracy</th><th>95 % CI</th></tr>{cells}</table>"
    return table


def write_report(run_dir: Path, summary: dict, max_images: int = 96) -> Path:
    """report.html of a run: summary tables, one histogram per metric, and an image grid with prompts."""
    from .run import read_scores

    run_dir = Path(run_dir)
    rows = read_scores(run_dir)
    config = json.loads((run_dir / "config.json").read_text()) if (run_dir / "config.json").is_file() else {}
    plots = "".join(histogram_svg([r["scores"][m] for r in rows], m) for m in summary["metrics"])
    cells = "".join(
        f'<div class="cell">{_img(run_dir / r["image"])}<br>{html.escape(r["prompt"])} <i>(seed {r["seed"]})</i><br>'
        + " ".join(f"{k}={fmt(v)}" for k, v in r["scores"].items()) + "</div>"
        for r in rows[:max_images])
    body = (f"<h1>promptlift eval: {html.escape(str(config.get('prompts', '')))}</h1>"
            f"<p>model {html.escape(str(config.get('model') or 'embedded default'))}; lifts {html.escape(str(config.get('lift')))}; "
            f"{summary['n']} images of {summary['prompts']} prompts</p>"
            f"<h2>Metrics</h2>{_metric_table(summary)}<h2>Distributions</h2><div class='plots'>{plots}</div>"
            f"<h2>Images (first {min(max_images, len(rows))})</h2><div class='grid'>{cells}</div>")
    return atomic_write_text(run_dir / "report.html", _page("promptlift eval", body))


def write_compare_report(path: Path, result: dict, pairs: list[dict], run_a: Path, run_b: Path, max_pairs: int = 48) -> Path:
    """compare.html: the win rate with its interval, per category, and side-by-side pairs."""
    cats = "".join(f"<tr><td>{html.escape(c)}</td><td>{v['win_rate']:.3f}</td><td>[{v['ci95'][0]:.3f}, {v['ci95'][1]:.3f}]</td>"
                   f"<td>{v['n']}</td></tr>" for c, v in result.get("by_category", {}).items())
    shown = "".join(
        f'<div class="pair">{_img(run_a / p["image_a"], "win" if p["a"] > p["b"] else "")}'
        f'{_img(run_b / p["image_b"], "win" if p["b"] > p["a"] else "")}'
        f'<div>{html.escape(p["prompt"])} (seed {p["seed"]})<br>A {fmt(p["a"])} vs B {fmt(p["b"])}</div></div>'
        for p in pairs[:max_pairs])
    body = (f"<h1>A vs B judged by {html.escape(result['judge'])}</h1>"
            f"<p>A = {html.escape(str(run_a))}<br>B = {html.escape(str(run_b))}</p>"
            f"<p><b>win rate of A: {result['win_rate']:.3f}</b> (95 % CI [{result['ci95'][0]:.3f}, {result['ci95'][1]:.3f}]), "
            f"{result['n']} pairs, {result['ties']} ties</p>"
            + (f"<h2>By category</h2><table><tr><th>category</th><th>win rate</th><th>95 % CI</th><th>n</th></tr>{cats}</table>" if cats else "")
            + f"<h2>Pairs (A left, B right; the higher score outlined)</h2>{shown}")
    return atomic_write_text(path, _page("promptlift compare", body))
