"""A static, self-contained HTML report of one run: leaderboard table, trade-off plots, PSR maps, examples.

Reads ``RUN_DIR/leaderboard.json`` (written by ``bench leaderboard``) and, when present, ``RUN_DIR/examples/
<method>.npz`` (uint8 ``clean`` and ``protected``, K x H x W x 3). Writes one HTML file with everything inline:
CSS, a few lines of JS to sort the table, plots drawn here as SVG, example crops as base64 PNG. No server,
no network, no plotting library. Missing values render as "n/a".
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bench.tables import white_box_text

# Tableau-10: distinguishable for categorical series (methods, adversaries).
PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
           "#bab0ac"]
# A perceptually ordered sequential scale (viridis anchors) for PSR in [0, 1].
_SEQUENTIAL = [(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)]
NA = "n/a"


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any) -> float | None:
    """A finite float, or None for anything missing / non-numeric / NaN."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _pct(value: Any, digits: int = 1) -> str:
    v = _num(value)
    return NA if v is None else f"{100 * v:.{digits}f}%"


def _fmt(value: Any, spec: str) -> str:
    v = _num(value)
    return NA if v is None else format(v, spec)


def _get(mapping: Any, *keys: str) -> Any:
    """mapping[k1][k2]... or None when any level is missing or not a dict."""
    for key in keys:
        if not isinstance(mapping, dict):
            return None
        mapping = mapping.get(key)
    return mapping


def sequential_color(value: float) -> str:
    """Hex colour of ``value`` in [0, 1] on the viridis-like scale."""
    x = min(max(value, 0.0), 1.0) * (len(_SEQUENTIAL) - 1)
    i = min(int(x), len(_SEQUENTIAL) - 2)
    t = x - i
    rgb = [round(a + (b - a) * t) for a, b in zip(_SEQUENTIAL[i], _SEQUENTIAL[i + 1], strict=True)]
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def _text_on(value: float) -> str:
    return "#fff" if value < 0.6 else "#111"


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2, 5 x 10^k steps) covering [lo, hi]."""
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(count, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks, t = [], start
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 10))
        t += step
    if ticks[-1] < hi:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def _text_width(text: str, size: float = 12) -> float:
    return 0.6 * size * len(text)


# ---------------------------------------------------------------------------------------------------- data

def load_board(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / "leaderboard.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `bench leaderboard {run_dir}` first (it writes the JSON)")
    try:
        board = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); regenerate it with `bench leaderboard {run_dir}`") from exc
    if not isinstance(board, dict) or not isinstance(board.get("entries"), list):
        raise ValueError(f"{path} has no 'entries' list; regenerate it with `bench leaderboard {run_dir}`")
    return normalise(board)


def normalise(board: dict[str, Any]) -> dict[str, Any]:
    """Entries as dicts that each have a method name; targets and adversaries as lists (missing -> empty)."""
    entries = [dict(e) for e in board.get("entries") or [] if isinstance(e, dict)]
    scenarios = {e.get("scenario") for e in entries if e.get("scenario")}
    for i, e in enumerate(entries):
        e["method"] = str(e.get("method") or f"entry {i + 1}")
        # one entry per method and scenario: name the scenario when a run has several
        several = len(scenarios) > 1 and e.get("scenario")
        e["label"] = f"{e['method']} ({e['scenario']})" if several else e["method"]
    targets = board.get("targets") if isinstance(board.get("targets"), list) else []
    adversaries = board.get("adversaries") if isinstance(board.get("adversaries"), list) else []
    return {**board, "entries": entries, "targets": [str(t) for t in targets],
            "adversaries": [str(a) for a in adversaries]}


def load_examples(run_dir: Path, methods: Sequence[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """method -> (clean, protected) uint8 K x H x W x 3 from RUN_DIR/examples/<method>.npz, where present."""
    out = {}
    folder = Path(run_dir) / "examples"
    for method in methods:
        path = folder / f"{method}.npz"
        if not path.is_file():
            continue
        with np.load(path, allow_pickle=False) as data:
            if "clean" not in data or "protected" not in data:
                raise ValueError(f"{path} needs arrays 'clean' and 'protected' (uint8 K x H x W x 3)")
            clean, protected = data["clean"], data["protected"]
        if clean.shape != protected.shape or clean.ndim != 4 or clean.shape[-1] != 3:
            raise ValueError(f"{path}: 'clean' {clean.shape} and 'protected' {protected.shape} must both be "
                             "K x H x W x 3")
        out[method] = (clean.astype(np.uint8), protected.astype(np.uint8))
    return out


def _psr_cell(entry: dict, target: str, adversary: str) -> dict:
    cell = _get(entry, "psr", target, adversary)
    return cell if isinstance(cell, dict) else {}


def _top1(entry: dict, target: str, adversary: str) -> float | None:
    return _num(_psr_cell(entry, target, adversary).get("top1"))


def _ok(entry: dict) -> bool:
    return entry.get("status", "ok") == "ok"


# ---------------------------------------------------------------------------------------------------- SVG

class Svg:
    """A tiny SVG writer: collects elements, renders one <svg> with a viewBox so it scales to its box."""

    def __init__(self, width: float, height: float, label: str):
        self.width, self.height, self.label = width, height, label
        self.parts: list[str] = []

    def add(self, tag: str, content: str = "", title: str | None = None, **attrs: Any) -> None:
        attr = " ".join(f'{k.rstrip("_").replace("_", "-")}="{_esc(v)}"' for k, v in attrs.items() if v is not None)
        inner = (f"<title>{_esc(title)}</title>" if title else "") + content
        self.parts.append(f"<{tag} {attr}>{inner}</{tag}>" if inner else f"<{tag} {attr}/>")

    def text(self, x: float, y: float, text: str, **attrs: Any) -> None:
        self.add("text", _esc(text), x=f"{x:.1f}", y=f"{y:.1f}", **attrs)

    def render(self) -> str:
        return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {self.width:.0f} {self.height:.0f}" '
                f'width="{self.width:.0f}" role="img" aria-label="{_esc(self.label)}">' + "".join(self.parts)
                + "</svg>")


def _axis_y(svg: Svg, x0: float, x1: float, scale: Callable[[float], float], ticks: list[float],
            fmt: Callable[[float], str], label: str) -> None:
    for t in ticks:
        y = scale(t)
        svg.add("line", x1=x0, x2=x1, y1=f"{y:.1f}", y2=f"{y:.1f}", stroke="#e5e7eb")
        svg.text(x0 - 6, y + 4, fmt(t), text_anchor="end", class_="tick")
    mid = (scale(ticks[0]) + scale(ticks[-1])) / 2
    svg.text(14, mid, label, text_anchor="middle", class_="axis", transform=f"rotate(-90 14 {mid:.1f})")


def tradeoff_plot(board: dict) -> tuple[str, str]:
    """PSR (worst case and mean) against visibility (LPIPS, else 1 - SSIM): up and left is better."""
    entries = [e for e in board["entries"] if _ok(e)]
    use_lpips = any(_num(e.get("lpips")) is not None for e in entries)
    metric = "lpips" if use_lpips else "ssim"
    points = []
    for e in entries:
        q = _num(e.get(metric))
        worst, mean = _num(e.get("psr_top1_worst")), _num(e.get("psr_top1_mean"))
        if q is None or (worst is None and mean is None):
            continue
        points.append((e["label"], q if use_lpips else 1 - q, worst, mean))
    xlabel = "LPIPS (AlexNet) to the clean crop: lower is less visible" if use_lpips else \
        "1 - SSIM to the clean crop: lower is less visible"
    svg = Svg(720, 440, "PSR against image distortion per method")
    left, right, top, bottom = 64, 700, 16, 356
    xmax = max([p[1] for p in points] + [1e-3]) * 1.15
    xt = nice_ticks(0.0, xmax)
    yt = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]

    def sx(v: float) -> float:
        return left + (right - left) * v / xt[-1]

    def sy(v: float) -> float:
        return bottom - (bottom - top) * v

    _axis_y(svg, left, right, sy, yt, lambda t: f"{100 * t:.0f}%", "PSR@1 (top-1 protection success)")
    for t in xt:
        svg.add("line", x1=f"{sx(t):.1f}", x2=f"{sx(t):.1f}", y1=top, y2=bottom, stroke="#f1f2f4")
        svg.text(sx(t), bottom + 16, f"{t:g}", text_anchor="middle", class_="tick")
    svg.text((left + right) / 2, bottom + 40, xlabel, text_anchor="middle", class_="axis")
    svg.add("rect", x=left, y=top, width=right - left, height=bottom - top, fill="none", stroke="#9ca3af")
    labels: list[tuple[float, float]] = []
    for i, (method, x, worst, mean) in enumerate(points):
        color = PALETTE[i % len(PALETTE)]
        px = sx(x)
        tip = f"{method}: {metric.upper()} {x if use_lpips else 1 - x:.4f}, PSR@1 worst {_pct(worst)}, mean {_pct(mean)}"
        if worst is not None and mean is not None:
            svg.add("line", x1=f"{px:.1f}", x2=f"{px:.1f}", y1=f"{sy(worst):.1f}", y2=f"{sy(mean):.1f}",
                    stroke=color, stroke_width=2, opacity=0.6)
        if mean is not None:
            svg.add("circle", cx=f"{px:.1f}", cy=f"{sy(mean):.1f}", r=6, fill="#fff", stroke=color,
                    stroke_width=2.5, title=tip)
        anchor_y = sy(worst if worst is not None else mean)
        if worst is not None:
            svg.add("circle", cx=f"{px:.1f}", cy=f"{anchor_y:.1f}", r=7, fill=color, stroke="#fff",
                    stroke_width=1.5, title=tip, class_="point")
        ly = anchor_y + 4
        while any(abs(ly - oy) < 14 and abs(px - ox) < 120 for ox, oy in labels):
            ly += 14  # nudge labels that would overlap an earlier one
        labels.append((px, ly))
        flip = px > right - 130
        svg.text(px + (-11 if flip else 11), ly, method, text_anchor="end" if flip else "start",
                 class_="label", fill=color)
    ly = bottom + 66
    svg.add("circle", cx=left + 6, cy=ly - 4, r=6, fill="#6b7280")
    svg.text(left + 16, ly, "worst case over targets \u00d7 adversaries (primary score)", class_="legend")
    svg.add("circle", cx=left + 366, cy=ly - 4, r=5, fill="#fff", stroke="#6b7280", stroke_width=2.5)
    svg.text(left + 376, ly, "mean over targets \u00d7 adversaries", class_="legend")
    missing = [e["label"] for e in entries if e["label"] not in {p[0] for p in points}]
    note = f"Not plotted (no {metric.upper()} or PSR): {', '.join(missing)}." if missing else ""
    if not points:
        svg.text((left + right) / 2, (top + bottom) / 2, "no method has both PSR and image-quality values",
                 text_anchor="middle", class_="axis")
    return svg.render(), note


def heatmap_plot(board: dict) -> str:
    """PSR@1 per method (rows) and target (columns), one panel per adversary, one colour scale."""
    entries = [e for e in board["entries"] if _ok(e)]
    targets, adversaries = list(board.get("targets") or []), list(board.get("adversaries") or [])
    cw, ch = 74, 30
    label_w = max([_text_width(e["label"], 13) for e in entries] + [60]) + 16
    col_head = max([_text_width(t, 12) for t in targets] + [40]) * 0.72 + 24  # rotated labels
    panel_w = max(cw * max(len(targets), 1), _text_width(f"adversary: {max(adversaries, key=len, default='')}",
                                                           13)) + 18
    width = max(label_w + panel_w * max(len(adversaries), 1) + 10, label_w + 260 + 240)
    height = 28 + col_head + ch * max(len(entries), 1) + 58
    svg = Svg(width, height, "PSR heatmap method by target per adversary")
    y0 = 28 + col_head
    for r, e in enumerate(entries):
        svg.text(label_w - 10, y0 + r * ch + ch / 2 + 4, e["label"], text_anchor="end", class_="label")
    for a, adversary in enumerate(adversaries):
        x0 = label_w + a * panel_w
        svg.text(x0 + (panel_w - 18) / 2, 16, f"adversary: {adversary}", text_anchor="middle", class_="panel")
        for c, target in enumerate(targets):
            cx = x0 + (panel_w - 18 - cw * len(targets)) / 2 + c * cw + cw / 2
            svg.text(cx - 4, y0 - 8, target, class_="tick", transform=f"rotate(-35 {cx - 4:.1f} {y0 - 8:.1f})")
        for r, e in enumerate(entries):
            for c, target in enumerate(targets):
                cell = _psr_cell(e, target, adversary)
                v = _num(cell.get("top1"))
                x, y = x0 + (panel_w - 18 - cw * len(targets)) / 2 + c * cw, y0 + r * ch
                ci = cell.get("top1_ci") if isinstance(cell.get("top1_ci"), list) else None
                tip = f"{e['label']} | {target} | {adversary}: PSR@1 {_pct(v)}"
                if ci and len(ci) == 2:
                    tip += f" (95% CI {_pct(ci[0])} to {_pct(ci[1])})"
                if _num(cell.get("top5")) is not None:
                    tip += f", PSR@5 {_pct(cell.get('top5'))}"
                if cell.get("status") == "failed":
                    tip += f" failed: {cell.get('reason')}"
                fill = "#f3f4f6" if v is None else sequential_color(v)
                svg.add("rect", x=f"{x:.1f}", y=f"{y:.1f}", width=cw - 2, height=ch - 2, rx=3, fill=fill,
                        title=tip, class_="cell")
                svg.text(x + cw / 2 - 1, y + ch / 2 + 3, _pct(v, 0) if v is not None else NA, text_anchor="middle",
                         class_="value", fill="#6b7280" if v is None else _text_on(v))
    # colour legend
    ly = y0 + ch * max(len(entries), 1) + 18
    lx, lw = label_w, 260
    for i in range(50):
        svg.add("rect", x=f"{lx + lw * i / 50:.1f}", y=ly, width=f"{lw / 50 + 0.6:.1f}", height=10,
                fill=sequential_color(i / 49))
    for t in (0, 0.5, 1):
        svg.text(lx + lw * t, ly + 24, f"{100 * t:.0f}%", text_anchor="middle", class_="tick")
    svg.text(lx + lw + 12, ly + 9, "PSR@1 (higher: better protection)", class_="legend")
    return svg.render()


def adversary_bars(board: dict) -> str:
    """Per method, one bar per adversary: PSR@1 averaged over targets; a tick marks the worst target."""
    entries = [e for e in board["entries"] if _ok(e)]
    targets, adversaries = list(board.get("targets") or []), list(board.get("adversaries") or [])
    bw, gap = 20, 28
    group_w = bw * max(len(adversaries), 1) + gap
    left, top, plot_h = 64, 34, 260
    width = max(left + group_w * max(len(entries), 1) + 20, 420)
    label_h = max([_text_width(e["label"], 12) for e in entries] + [40]) * 0.6 + 20
    height = top + plot_h + label_h + 10
    svg = Svg(width, height, "PSR under each adversary per method")
    bottom = top + plot_h

    def sy(v: float) -> float:
        return bottom - plot_h * v

    _axis_y(svg, left, width - 10, sy, [0, 0.25, 0.5, 0.75, 1.0], lambda t: f"{100 * t:.0f}%",
            "PSR@1, mean over targets")
    lx = left
    for a, adversary in enumerate(adversaries):
        svg.add("rect", x=lx, y=6, width=12, height=12, rx=2, fill=PALETTE[a % len(PALETTE)])
        svg.text(lx + 16, 16, adversary, class_="legend")
        lx += _text_width(adversary, 12) + 36
    svg.add("line", x1=lx, x2=lx + 14, y1=12, y2=12, stroke="#111", stroke_width=2)
    svg.text(lx + 18, 16, "worst target", class_="legend")
    for g, e in enumerate(entries):
        gx = left + 14 + g * group_w
        for a, adversary in enumerate(adversaries):
            values = {t: _top1(e, t, adversary) for t in targets}
            known = [v for v in values.values() if v is not None]
            x = gx + a * bw
            if not known:
                svg.text(x + bw / 2, bottom - 4, NA, text_anchor="middle", class_="tiny")
                continue
            mean, worst = sum(known) / len(known), min(known)
            tip = f"{e['label']} vs {adversary}: mean {_pct(mean)}; " + ", ".join(
                f"{t} {_pct(v)}" for t, v in values.items())
            svg.add("rect", x=f"{x:.1f}", y=f"{sy(mean):.1f}", width=bw - 3, height=f"{max(bottom - sy(mean), 0.5):.1f}",
                    fill=PALETTE[a % len(PALETTE)], title=tip, class_="bar")
            svg.add("line", x1=f"{x - 1:.1f}", x2=f"{x + bw - 2:.1f}", y1=f"{sy(worst):.1f}", y2=f"{sy(worst):.1f}",
                    stroke="#111", stroke_width=2, title=f"worst target: {_pct(worst)}")
        cx = gx + bw * len(adversaries) / 2
        svg.text(cx, bottom + 14, e["label"], text_anchor="end", class_="label",
                 transform=f"rotate(-30 {cx:.1f} {bottom + 14:.1f})")
    svg.add("line", x1=left, x2=width - 10, y1=bottom, y2=bottom, stroke="#6b7280")
    return svg.render()


# ---------------------------------------------------------------------------------------------------- table

def _columns(board: dict) -> list[tuple[str, str, Callable[[dict], tuple[Any, str, str | None]]]]:
    """(group, header, cell(entry) -> (sort value, text, tooltip)) for every table column."""
    targets, adversaries = list(board.get("targets") or []), list(board.get("adversaries") or [])

    def number(key: str, spec: str) -> Callable[[dict], tuple[Any, str, str | None]]:
        return lambda e: (_num(e.get(key)), _fmt(e.get(key), spec), None)

    def pct(key: str) -> Callable[[dict], tuple[Any, str, str | None]]:
        return lambda e: (_num(e.get(key)), _pct(e.get(key)), None)

    def psr(target: str, adversary: str) -> Callable[[dict], tuple[Any, str, str | None]]:
        def cell(e: dict) -> tuple[Any, str, str | None]:
            c = _psr_cell(e, target, adversary)
            v = _num(c.get("top1"))
            ci = c.get("top1_ci")
            tip = f"95% CI {_pct(ci[0])} to {_pct(ci[1])}" if isinstance(ci, list) and len(ci) == 2 else None
            if _num(c.get("top5")) is not None:
                tip = (tip + "; " if tip else "") + f"PSR@5 {_pct(c.get('top5'))}"
            if c.get("status") == "failed":
                tip = f"failed: {c.get('reason')}"
            return v, _pct(v), tip
        return cell

    def authorized(e: dict) -> tuple[Any, str, str | None]:
        acc = e.get("authorized_accuracy")
        values = {t: _num(v) for t, v in acc.items()} if isinstance(acc, dict) else {}
        known = [v for v in values.values() if v is not None]
        if not known:
            return None, NA, None
        mean = sum(known) / len(known)
        return mean, _pct(mean), ", ".join(f"{t} {_pct(v)}" for t, v in values.items())

    def budget(e: dict) -> tuple[Any, str, str | None]:
        linf = _num(_get(e, "budget", "linf"))
        return linf, (NA if linf is None else f"{255 * linf:.3g}/255"), None

    def status(e: dict) -> tuple[Any, str, str | None]:
        s = str(e.get("status") or NA)
        return s, s, e.get("reason") or None

    cols: list[tuple[str, str, Callable[[dict], tuple[Any, str, str | None]]]] = [
        ("", "method", lambda e: (str(e.get("method")), str(e.get("method")), None)),
        ("", "kind", lambda e: (str(e.get("kind") or NA), str(e.get("kind") or NA), None)),
        ("", "scenario", lambda e: (str(e.get("scenario") or NA), str(e.get("scenario") or NA), None)),
        ("", "status", status),
        ("PSR@1", "worst", pct("psr_top1_worst")),
        ("PSR@1", "mean", pct("psr_top1_mean")),
    ]
    for t in targets:
        cols += [(f"PSR@1 on {t}", a, psr(t, a)) for a in adversaries]
    cols += [
        ("quality", "SSIM", number("ssim", ".4f")),
        ("quality", "PSNR dB", number("psnr", ".2f")),
        ("quality", "LPIPS", number("lpips", ".4f")),
        ("cost", "budget L\u221e", budget),
        ("cost", "fit s/user", number("fit_s_per_user", ".2f")),
        ("cost", "ms/photo", number("protect_ms_per_photo", ".1f")),
        ("run", "users", number("users", ".0f")),
        ("run", "probes", number("probes", ".0f")),
        ("run", "device", lambda e: (str(e.get("device") or NA), str(e.get("device") or NA), None)),
        ("run", "authorized acc.", authorized),
    ]
    return cols


def leaderboard_table(board: dict) -> str:
    cols = _columns(board)
    # two header rows: a group row (merged runs of equal group names) and the sortable column row
    groups: list[tuple[str, int]] = []
    for group, _, _ in cols:
        if groups and groups[-1][0] == group:
            groups[-1] = (group, groups[-1][1] + 1)
        else:
            groups.append((group, 1))
    head1 = "".join(f'<th colspan="{n}" class="group">{_esc(g)}</th>' for g, n in groups)
    head2 = "".join(f'<th data-col="{i}" title="click to sort">{_esc(h)}<span class="arrow"></span></th>'
                    for i, (_, h, _) in enumerate(cols))
    rows = []
    for rank, e in enumerate(board["entries"], start=1):
        cells = []
        for group, _, fn in cols:
            value, text, tip = fn(e)
            sort = "" if value is None else (f"{value:.10g}" if isinstance(value, float) else str(value))
            classes = []
            if text == NA:
                classes.append("na")
            style = ""
            if group.startswith("PSR@1") and isinstance(value, float):
                style = f' style="background:{sequential_color(value)};color:{_text_on(value)}"'
                classes.append("psr")
            attrs = f' data-sort="{_esc(sort)}"' + (f' title="{_esc(tip)}"' if tip else "")
            attrs += f' class="{" ".join(classes)}"' if classes else ""
            cells.append(f"<td{attrs}{style}>{_esc(text)}</td>")
        status = str(e.get("status") or "ok")
        rows.append(f'<tr class="status-{_esc(status)}" data-rank="{rank}">{"".join(cells)}</tr>')
    return (f'<table id="leaderboard"><thead><tr>{head1}</tr><tr>{head2}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


# ---------------------------------------------------------------------------------------------------- gallery

def _png_uri(image: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def amplified_mask(clean: np.ndarray, protected: np.ndarray) -> tuple[np.ndarray, float]:
    """The perturbation shown around mid-grey, scaled so its largest |value| reaches the full range."""
    diff = protected.astype(np.float32) - clean.astype(np.float32)
    peak = float(np.abs(diff).max())
    gain = 127.0 / peak if peak > 0 else 1.0
    return np.clip(128 + diff * gain, 0, 255).astype(np.uint8), gain


def gallery(board: dict, examples: dict[str, tuple[np.ndarray, np.ndarray]]) -> str:
    if not examples:
        return '<p class="note">No example crops in this run (RUN_DIR/examples/&lt;method&gt;.npz).</p>'
    cards, shown = [], set()
    for e in board["entries"]:
        method = e["method"]
        if method not in examples or method in shown:
            continue
        shown.add(method)
        clean, protected = examples[method]
        rows = []
        for k in range(clean.shape[0]):
            mask, gain = amplified_mask(clean[k], protected[k])
            linf = int(np.abs(protected[k].astype(np.int16) - clean[k].astype(np.int16)).max())
            rows.append(
                '<div class="triple">'
                f'<figure><img src="{_png_uri(clean[k])}" alt="clean"><figcaption>clean</figcaption></figure>'
                f'<figure><img src="{_png_uri(protected[k])}" alt="protected"><figcaption>protected'
                f'</figcaption></figure>'
                f'<figure><img src="{_png_uri(mask)}" alt="mask x{gain:.1f}"><figcaption>mask \u00d7{gain:.1f} '
                f'(L\u221e {linf}/255)</figcaption></figure></div>')
        quality = f"SSIM {_fmt(e.get('ssim'), '.3f')} \u00b7 PSNR {_fmt(e.get('psnr'), '.1f')} dB \u00b7 " \
                  f"LPIPS {_fmt(e.get('lpips'), '.3f')} \u00b7 PSR@1 worst {_pct(e.get('psr_top1_worst'))}"
        cards.append(f'<div class="card"><h3>{_esc(method)} <span class="kind">{_esc(e.get("kind") or "")}</span>'
                     f'</h3><p class="small">{_esc(quality)}</p>{"".join(rows)}</div>')
    return f'<div class="gallery">{"".join(cards)}</div>'


# ---------------------------------------------------------------------------------------------------- page

_CSS = """
:root{--fg:#1f2937;--muted:#6b7280;--line:#e5e7eb;--bg:#f8fafc;--accent:#4e79a7}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:var(--fg);
 background:var(--bg)}
header{background:#1f2937;color:#f9fafb;padding:18px 28px}
header h1{margin:0 0 4px;font-size:22px;font-weight:600}
header .meta{color:#cbd5e1;font-size:13px}
main{padding:18px 28px 40px;max-width:1500px}
section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:16px 18px;margin:0 0 18px}
h2{font-size:17px;margin:0 0 8px}
h3{font-size:15px;margin:0 0 4px}
p.note,p.small,.small{color:var(--muted);font-size:12.5px;margin:4px 0 8px}
.scroll{overflow-x:auto}
table{border-collapse:collapse;font-size:13px;font-variant-numeric:tabular-nums}
th,td{padding:5px 8px;border-bottom:1px solid var(--line);white-space:nowrap;text-align:right}
td:nth-child(-n+4),thead tr:last-child th:nth-child(-n+4){text-align:left}
thead th{background:#f3f4f6;position:sticky;top:0}
th.group{text-align:center;font-weight:600;color:var(--muted);font-size:12px;border-bottom:none}
th[data-col]{cursor:pointer;user-select:none}
th[data-col]:hover{background:#e5e7eb}
th .arrow{display:inline-block;width:10px;margin-left:2px;color:var(--accent)}
td.na{color:#9ca3af}
td.psr{font-weight:600}
tr.status-unavailable td,tr.status-failed td{color:#9ca3af;font-style:italic}
tr.status-failed td:nth-child(4){color:#b91c1c}
tbody tr:hover td{outline:1px solid #cbd5e1}
.plots{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:18px}
.plot svg{max-width:100%;height:auto}
svg text{font-family:inherit}
svg .tick{font-size:11px;fill:#4b5563}
svg .axis{font-size:12px;fill:#374151}
svg .label{font-size:12.5px;font-weight:600}
svg .legend{font-size:12px;fill:#374151}
svg .panel{font-size:13px;font-weight:600;fill:#374151}
svg .value{font-size:11.5px;font-weight:600}
svg .tiny{font-size:9px;fill:#9ca3af}
svg .point:hover,svg .bar:hover,svg .cell:hover{stroke:#111;stroke-width:2}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(420px,1fr));gap:14px}
.card{border:1px solid var(--line);border-radius:8px;padding:10px 12px}
.card .kind{font-weight:400;color:var(--muted);font-size:12px}
.triple{display:flex;gap:8px;margin:6px 0}
figure{margin:0;text-align:center}
figure img{width:128px;height:128px;object-fit:cover;border-radius:4px;image-rendering:auto;display:block}
figcaption{font-size:11.5px;color:var(--muted)}
dl.env{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:0;font-size:12.5px}
dl.env dt{color:var(--muted)} dl.env dd{margin:0;word-break:break-all}
ul.notes{margin:6px 0 0;padding-left:20px;color:var(--muted);font-size:12.5px}
"""

_JS = """
(function(){
  var table=document.getElementById('leaderboard'); if(!table) return;
  var body=table.tBodies[0], state={col:-1,dir:1};
  function key(td){var s=td.getAttribute('data-sort'); if(s===null||s==='') return null;
    var n=Number(s); return isNaN(n)?s.toLowerCase():n;}
  table.querySelectorAll('th[data-col]').forEach(function(th){
    th.addEventListener('click',function(){
      var col=Number(th.getAttribute('data-col'));
      state.dir=(state.col===col)?-state.dir:(th.textContent.match(/^(method|kind|scenario|status|device)/)?1:-1);
      state.col=col;
      var rows=Array.prototype.slice.call(body.rows);
      rows.sort(function(a,b){
        var x=key(a.cells[col]), y=key(b.cells[col]);
        if(x===null&&y===null) return Number(a.dataset.rank)-Number(b.dataset.rank);
        if(x===null) return 1; if(y===null) return -1;   // n/a always last
        if(x<y) return -state.dir; if(x>y) return state.dir;
        return Number(a.dataset.rank)-Number(b.dataset.rank);
      });
      rows.forEach(function(r){body.appendChild(r);});
      table.querySelectorAll('th .arrow').forEach(function(s){s.textContent='';});
      th.querySelector('.arrow').textContent=state.dir>0?'\\u25b2':'\\u25bc';
    });
  });
  document.body.setAttribute('data-report-ready','1');
})();
"""


def _environment(board: dict) -> str:
    env = _get(board, "run", "environment")
    if not isinstance(env, dict) or not env:
        return '<p class="note">No environment recorded.</p>'
    items = []
    for k, v in env.items():
        text = json.dumps(v, default=str) if isinstance(v, (dict, list)) else str(v)
        items.append(f"<dt>{_esc(k)}</dt><dd>{_esc(text if len(text) < 300 else text[:300] + '...')}</dd>")
    return f'<dl class="env">{"".join(items)}</dl>'


def _clean_accuracy(board: dict) -> str:
    clean = board.get("clean")
    if not isinstance(clean, dict) or not clean:
        return ""
    rows = "".join(f"<tr><td>{_esc(t)}</td><td>{_pct(_get(v, 'top1_accuracy'))}</td>"
                   f"<td>{_pct(_get(v, 'top5_accuracy'))}</td></tr>" for t, v in clean.items())
    return ('<h3>Clean photos (no protection)</h3><table class="clean"><thead><tr><th>target</th>'
            f"<th>top-1 accuracy</th><th>top-5 accuracy</th></tr></thead><tbody>{rows}</tbody></table>")


def _notes(board: dict) -> str:
    notes = []
    for e in board["entries"]:
        if not _ok(e):
            notes.append(f"{e['label']}: {e.get('status')} ({e.get('reason') or 'no reason given'})")
    for t, info in (board.get("target_info") or {}).items():
        if isinstance(info, dict) and info.get("unavailable"):
            notes.append(f"target {t}: unavailable ({info['unavailable']})")
    if any(isinstance(info, dict) and info.get("white_box") for info in (board.get("target_info") or {}).values()):
        notes.append(f"white-box targets (surrogates, or running a surrogate's weights): {white_box_text(board)}")
    return "<ul class='notes'>" + "".join(f"<li>{_esc(n)}</li>" for n in notes) + "</ul>" if notes else ""


def render_html(board: dict, examples: dict[str, tuple[np.ndarray, np.ndarray]] | None = None) -> str:
    board = normalise(board)
    run = board.get("run") if isinstance(board.get("run"), dict) else {}
    title = f"cloakbench report: {run.get('suite') or 'run'}"
    ok = [e for e in board["entries"] if _ok(e)]
    tradeoff, tradeoff_note = tradeoff_plot(board)
    primary = run.get("primary_score") or "psr_top1_worst"
    meta = " \u00b7 ".join(x for x in [f"suite {run.get('suite') or NA}", f"created {run.get('created') or NA}",
                                       f"{len(board['entries'])} methods ({len(ok)} ok)",
                                       f"{len(board.get('targets') or [])} targets",
                                       f"{len(board.get('adversaries') or [])} adversaries"])
    sections = [
        "<section><h2>Leaderboard</h2>"
        f'<p class="small">Sorted by the primary score <b>{_esc(primary)}</b>: the top-1 protection success rate '
        "(share of protected probe photos whose identity the recogniser does not rank first) in the worst cell "
        "over targets \u00d7 adversaries. Click a header to sort; hover a PSR cell for its 95% bootstrap "
        f'interval over users.</p><div class="scroll">{leaderboard_table(board)}</div>{_notes(board)}</section>',
        '<section><h2>Protection against visibility</h2><div class="plots">'
        f'<div class="plot">{tradeoff}<p class="note">{_esc(tradeoff_note)}</p></div>'
        f'<div class="plot">{adversary_bars(board)}<p class="note">Bars: PSR@1 averaged over targets under each '
        "adversary; black tick: the worst target.</p></div></div></section>",
        '<section><h2>PSR@1 by method and target</h2>'
        f'<div class="plot scroll">{heatmap_plot(board)}</div></section>',
        '<section><h2>Examples</h2><p class="small">Clean and protected crops; the mask is the difference, '
        f"amplified around grey so it is visible.</p>{gallery(board, examples or {})}</section>",
        f"<section><h2>Run</h2>{_clean_accuracy(board)}<h3>Environment</h3>{_environment(board)}</section>",
    ]
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_esc(title)}</title>'
            f'<meta name="viewport" content="width=device-width,initial-scale=1"><style>{_CSS}</style></head>'
            f"<body><header><h1>{_esc(title)}</h1><div class=\"meta\">{_esc(meta)}</div></header>"
            f"<main>{''.join(sections)}</main><script>{_JS}</script></body></html>\n")


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Build the report of ``run_dir``; returns the HTML path (default RUN_DIR/report.html)."""
    run_dir = Path(run_dir)
    board = load_board(run_dir)
    methods = sorted({e["method"] for e in board["entries"]})
    path = Path(out) if out else run_dir / "report.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(board, load_examples(run_dir, methods)), encoding="utf-8")
    return path
