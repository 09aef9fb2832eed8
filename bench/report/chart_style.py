"""What the report's charts share: colours, matplotlib style and the figure turned into inline SVG."""

from __future__ import annotations

import html
import io
import re
from typing import Any

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

# Tableau-10: distinguishable categorical colours (method kinds, adversaries).
PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
           "#bab0ac"]
KIND_COLORS = {"universal": "#4e79a7", "per-image": "#e15759"}
SCENARIO_MARKERS = {"probe": "o", "gallery": "^"}
PSR_CMAP = matplotlib.colormaps["viridis"]
STYLE = {"font.size": 10, "font.family": "DejaVu Sans", "axes.spines.top": False, "axes.spines.right": False,
         "svg.fonttype": "path", "svg.hashsalt": "cloakbench"}  # glyphs as paths: the page looks as measured here
DPI = 72  # one pixel is one point: label offsets measured here are the offsets drawn


def inline_svg(fig: Figure, chart_id: str, label: str, tips: dict[str, str]) -> str:
    """The figure as an inline <svg>: ids prefixed so several charts share a page, tooltips as <title>."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None}, bbox_inches="tight", pad_inches=0.08)
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r'\bid="([^"]+)"', rf'id="{chart_id}-\1"', text)
    text = text.replace('href="#', f'href="#{chart_id}-').replace("url(#", f"url(#{chart_id}-")
    for gid, tip in tips.items():
        text = text.replace(f'<g id="{chart_id}-{gid}">', f'<g id="{chart_id}-{gid}"><title>{html.escape(tip)}</title>', 1)
    width_pt = float(re.search(r'<svg[^>]*?width="([\d.]+)pt"', text).group(1))
    return text.replace("<svg ", f'<svg class="chart" style="max-width:{width_pt * 4 / 3:.0f}px" role="img" '
                                 f'aria-label="{html.escape(label)}" ', 1)


def new_figure(width: float, height: float) -> tuple[Figure, FigureCanvasAgg]:
    fig = Figure(figsize=(width, height), dpi=DPI)
    return fig, FigureCanvasAgg(fig)


def empty_panel(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#6b7280")
    ax.set_xticks([])
    ax.set_yticks([])

