"""The report's charts, drawn with matplotlib and embedded in the page as inline SVG (hover a mark for its numbers).

- ``tradeoff_chart``: a PSR@1 score (worst case, no adversary, unseen targets, worst adaptive) with its 95%
  interval against LPIPS (1 - SSIM when no entry has LPIPS) or against the cost of protecting a photo, one colour
  per method kind, one marker per scenario, the legend beside the plot, every method labelled once; labels are
  placed where they overlap neither another label nor a mark (``bench.report.label_placement``).
- ``heatmap_chart``: PSR@1 per entry (rows) and target (columns), one panel per adversary.
- ``adversary_chart``: per entry, PSR@1 under each adversary averaged over targets, with the worst target marked.
"""

from __future__ import annotations

import math
from typing import Any

import matplotlib
from matplotlib.colors import Normalize
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from bench.report.chart_style import (
    KIND_COLORS,
    PALETTE,
    PSR_CMAP,
    SCENARIO_MARKERS,
    STYLE,
    empty_panel,
    inline_svg,
    new_figure,
)
from bench.report.formatting import cell_status, finite, number, percent
from bench.report.html_data import HEADLINE, is_ok, psr_cell, psr_value, white_box
from bench.report.label_placement import place_labels
from bench.report.threat_profile import SCORES, score_of


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats (lower x and higher y), by increasing x."""
    front, best = [], -math.inf
    for i in sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1])):
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def _seconds_per_photo(e: dict) -> float | None:
    """What protecting one photo costs, fitting included: fit seconds per user spread over the user's photos."""
    protect, fit = finite(e.get("protect_ms_per_photo")), finite(e.get("fit_s_per_user"))
    photos = (finite(e.get("probes")) or 0) / max(finite(e.get("users")) or 1, 1)
    if protect is None:
        return None
    return protect / 1000 + ((fit or 0.0) / photos if photos else 0.0)


def _x_axis(entries: list[dict], axis: str) -> tuple[str, Any, str]:
    """(what is plotted, entry -> x or None, axis label) for the visibility or the cost axis."""
    if axis == "cost":
        return ("s/photo", _seconds_per_photo,
                "seconds per protected photo: protecting, plus fitting spread over the user's query photos (log)")
    if any(finite(e.get("lpips")) is not None for e in entries):
        return "LPIPS", lambda e: finite(e.get("lpips")), "LPIPS (AlexNet) to the clean face: lower is less visible"
    return ("1 - SSIM", lambda e: None if finite(e.get("ssim")) is None else 1 - finite(e.get("ssim")),
            "1 - SSIM to the clean face: lower is less visible")


def tradeoff_chart(board: dict, score: str = "worst", axis: str = "visibility") -> tuple[str, str]:
    """One PSR@1 score (``bench.report.threat_profile.SCORES``) with its 95% interval against visibility or cost; returns
    (svg, note naming what could not be drawn)."""
    entries = [e for e in board["entries"] if is_ok(e)]
    what, x_of, xlabel = _x_axis(entries, axis)
    label, _, _ = SCORES[score]
    values = {id(e): score_of(e, score, HEADLINE.name) for e in entries}
    plotted = [e for e in entries if x_of(e) is not None and finite(values[id(e)][0]) is not None]
    xs = [x_of(e) for e in plotted]
    ys = [finite(values[id(e)][0]) for e in plotted]
    missing = [e["label"] for e in entries if e not in plotted]
    note = f"Not plotted (no {what} or no {label} PSR): {', '.join(missing)}." if missing else ""
    chart_id = f"{axis}-{score}".replace("_", "-")
    with matplotlib.rc_context(STYLE):
        fig, canvas = new_figure(12, 6.5)
        fig.subplots_adjust(left=0.08, right=0.74, top=0.97, bottom=0.11)
        ax = fig.add_subplot()
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"{HEADLINE.label}, {label}")
        ax.yaxis.set_major_formatter(lambda v, _: f"{100 * v:.0f}%")
        ax.grid(color="#e5e7eb", linewidth=0.8)
        ax.set_axisbelow(True)
        if not plotted:
            empty_panel(ax, f"no entry has both {what} and this PSR")
            return inline_svg(fig, chart_id, f"PSR@1 {label} against {what}", {}), note
        if axis == "cost":
            ax.set_xscale("log")
            ax.set_xlim(min(xs) / 2, max(xs) * 2)
        else:  # the marks' own range, with room for labels either side
            span = max(max(xs) - min(xs), 0.02)
            ax.set_xlim(max(min(xs) - 0.35 * span, 0), max(xs) + 0.35 * span)
        highs = [(values[id(e)][1] or (y, y))[1] for e, y in zip(plotted, ys, strict=True)]
        ax.set_ylim(-0.02, min(max(max(highs) * 1.15 + 0.02, 0.05), 1.04))
        tips = {}
        for i, (e, x, y) in enumerate(zip(plotted, xs, ys, strict=True)):
            gid, color = f"p{i}", KIND_COLORS.get(e.get("kind"), PALETTE[3])
            interval = values[id(e)][1]
            if interval:  # the score's 95% bootstrap interval over users
                ax.plot([x, x], list(interval), color=color, alpha=0.45, linewidth=1.6, zorder=2,
                        solid_capstyle="butt")
            (mark,) = ax.plot([x], [y], linestyle="none", marker=SCENARIO_MARKERS.get(e.get("scenario"), "D"),
                              markersize=8, color=color, markeredgecolor="white", markeredgewidth=0.8, zorder=3)
            mark.set_gid(gid)
            ci = f" [{percent(interval[0], suffix='%')}, {percent(interval[1], suffix='%')}]" if interval else ""
            tips[gid] = f"{e['label']}: {what} {number(x, '.3g')}, {HEADLINE.label} {label} {percent(y, suffix='%')}{ci}"
        front = pareto_front(list(zip(xs, ys, strict=True)))
        ax.plot([xs[i] for i in front], [ys[i] for i in front], color="#9ca3af", linestyle="--", linewidth=1, zorder=1)
        # one label per method, at its best scenario; a thin line joins a method's scenarios (same photos, same x)
        by_method: dict[str, list[int]] = {}
        for i, e in enumerate(plotted):
            by_method.setdefault(e["method"], []).append(i)
        for idx in by_method.values():
            if len(idx) > 1:
                ax.plot([xs[i] for i in idx], [ys[i] for i in idx], color="#d1d5db", linewidth=1.2, zorder=2)
        ax.legend(handles=[
            *(Line2D([], [], linestyle="none", marker="o", markersize=8, color=c, label=k) for k, c in KIND_COLORS.items()),
            *(Line2D([], [], linestyle="none", marker=m, markersize=8, color="#6b7280", label=f"{s} scenario")
              for s, m in SCENARIO_MARKERS.items() if any(e.get("scenario") == s for e in plotted)),
            Line2D([], [], color="#6b7280", alpha=0.45, linewidth=1.6, label="95% interval over users"),
            Line2D([], [], color="#9ca3af", linestyle="--", label="Pareto front (no entry is both\ncheaper or less "
                                                                  "visible and stronger)")],
            loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=9, frameon=False)  # outside: covers no point
        fig.draw_without_rendering()
        renderer = canvas.get_renderer()
        anchors = {}  # a method's label sits at its highest point; methods on the same spot share one label
        for method, idx in by_method.items():
            best = max(idx, key=lambda i: ys[i])
            px, py = ax.transData.transform((xs[best], ys[best]))
            key = next((k for k in anchors if math.dist(k, (px, py)) < 3), (px, py))
            anchors.setdefault(key, [best, []])[1].append(method)
        # crowded points choose first, while there is still room around them
        marks = [tuple(ax.transData.transform(p)) for p in zip(xs, ys, strict=True)]
        order = sorted(anchors, key=lambda k: (-sum(math.dist(k, m) < 80 for m in marks), k[0]))
        texts, sizes = [], []
        for k in order:
            t = ax.text(0, 0, ", ".join(anchors[k][1]), fontsize=10)
            bb = t.get_window_extent(renderer)
            sizes.append((bb.width, bb.height))
            t.remove()
            texts.append(", ".join(anchors[k][1]))
        bb = ax.get_window_extent(renderer)
        spots = place_labels(order, sizes, (bb.x0 + 2, bb.y0 + 2, bb.x1 - 2, bb.y1 - 2), marks, [])
        unlabelled = []
        for k, text, spot in zip(order, texts, spots, strict=True):
            i = anchors[k][0]
            if spot is None:
                unlabelled.append(text)
                continue
            _, end, ha, va = spot
            far = math.dist(k, end) > 12
            ax.annotate(text, (xs[i], ys[i]), xytext=(end[0] - k[0], end[1] - k[1]), textcoords="offset points",
                        ha=ha, va=va, fontsize=10, color="#111827", zorder=4,
                        arrowprops={"arrowstyle": "-", "color": "#9ca3af", "linewidth": 0.7, "shrinkA": 1,
                                    "shrinkB": 4} if far else None)
        if unlabelled:
            note = (note + " " if note else "") + f"No room for the labels of: {', '.join(unlabelled)} (hover the marks)."
        return inline_svg(fig, chart_id, f"PSR@1 {label} against {what}, per method", tips), note


# ---------------------------------------------------------------------------------------------- heatmap

def heatmap_chart(board: dict) -> str:
    """PSR@1 per entry (rows) and target (columns), one panel per adversary, one colour scale."""
    entries = [e for e in board["entries"] if is_ok(e)]
    targets, adversaries = board.get("targets") or [], board.get("adversaries") or []
    wb = white_box(board)
    rows, cols = max(len(entries), 1), max(len(targets), 1)
    # a panel is as wide as its cells or its title, whichever is wider: titles of one-target panels never meet
    titles = [f"adversary: {a}" for a in adversaries] or [""]
    panels = [max(0.62 * cols, 0.095 * len(t) + 0.1) for t in titles]
    with matplotlib.rc_context(STYLE):
        width = 2.6 + sum(panels) + 0.3 * len(panels)
        height = 2.2 + 0.3 * rows  # inches: 1.4 of column heads, 0.8 of colour bar, 0.3 per row
        fig, _ = new_figure(width, height)
        axes = fig.subplots(1, len(panels), sharey=True, squeeze=False, gridspec_kw={"width_ratios": panels})[0]
        fig.subplots_adjust(left=2.5 / width, right=0.99, top=1 - 1.4 / height, bottom=0.8 / height,
                            wspace=0.3 / (sum(panels) / len(panels)))
        norm, tips = Normalize(0, 1), {}
        if not entries or not adversaries or not targets:
            empty_panel(axes[0], "no PSR cells to show")
            return inline_svg(fig, "heatmap", "PSR by method and target", {})
        for a, (ax, adversary) in enumerate(zip(axes, adversaries, strict=True)):
            for r, e in enumerate(entries):
                for c, target in enumerate(targets):
                    cell = psr_cell(e, target, adversary)
                    v = finite(cell.get(HEADLINE.name))
                    rect = Rectangle((c, r), 0.96, 0.94, facecolor="#f3f4f6" if v is None else PSR_CMAP(norm(v)))
                    gid = f"c{a}-{r}-{c}"
                    rect.set_gid(gid)
                    ax.add_patch(rect)
                    tip = f"{e['label']} | {target} | {adversary}: PSR@1 {percent(v, suffix='%')}"
                    ci = cell.get(f"{HEADLINE.name}_ci")
                    if isinstance(ci, list) and len(ci) == 2:
                        tip += f" (95% CI {percent(ci[0], suffix='%')} to {percent(ci[1], suffix='%')})"
                    if finite(cell.get("top5")) is not None:
                        tip += f", PSR@5 {percent(cell.get('top5'), suffix='%')}"
                    if cell_status(cell):
                        tip += f" {cell_status(cell)}: {cell.get('reason')}"
                    tips[gid] = tip
                    ax.text(c + 0.48, r + 0.47, percent(v, 0) if v is not None else "n/a", ha="center",
                            va="center", fontsize=9, color="#6b7280" if v is None else ("white" if v < 0.6 else "#111"))
            ax.set_xlim(0, len(targets))
            ax.set_ylim(len(entries), 0)
            ax.set_xticks([c + 0.48 for c in range(len(targets))],
                          [t + (" (wb)" if t in wb else "") for t in targets], rotation=35, ha="left")
            ax.xaxis.tick_top()
            ax.tick_params(length=0)
            ax.set_title(titles[a], fontsize=11, fontweight="bold", pad=8, y=1.0 + 1.05 / (0.3 * rows))
            for side in ("top", "right", "bottom", "left"):
                ax.spines[side].set_visible(False)
        axes[0].set_yticks([r + 0.47 for r in range(len(entries))], [e["label"] for e in entries])
        bar = fig.add_axes((2.5 / width, 0.2 / height, min(3.0 / width, 0.4), 0.12 / height))
        fig.colorbar(matplotlib.cm.ScalarMappable(norm, PSR_CMAP), cax=bar, orientation="horizontal",
                     format=lambda v, _: f"{100 * v:.0f}%")
        bar.set_title("PSR@1 in % (higher: better protection)" + ("; (wb): white-box target" if wb else ""),
                      fontsize=9, loc="left")
        return inline_svg(fig, "heatmap", "PSR heatmap method by target per adversary", tips)


# ---------------------------------------------------------------------------------------------- adversaries

def adversary_chart(board: dict) -> str:
    """Per entry, one horizontal bar per adversary (PSR@1 averaged over targets) and a tick at the worst target."""
    entries = [e for e in board["entries"] if is_ok(e)]
    targets, adversaries = board.get("targets") or [], board.get("adversaries") or []
    rows = max(len(entries), 1)
    height = 1.3 + rows * (0.16 * max(len(adversaries), 1) + 0.12)
    with matplotlib.rc_context(STYLE):
        fig, _ = new_figure(10, height)
        fig.subplots_adjust(left=0.25, right=0.97, top=1 - 0.75 / height, bottom=0.5 / height)
        ax = fig.add_subplot()
        if not entries or not adversaries:
            empty_panel(ax, "no PSR cells to show")
            return inline_svg(fig, "adversaries", "PSR under each adversary per method", {})
        bar_h, tips = 0.8 / len(adversaries), {}
        for r, e in enumerate(entries):
            for a, adversary in enumerate(adversaries):
                values = {t: psr_value(e, t, adversary) for t in targets}
                known = [v for v in values.values() if v is not None]
                y = r - 0.4 + (a + 0.5) * bar_h
                if not known:
                    ax.text(0.005, y, "n/a", va="center", fontsize=8, color="#9ca3af")
                    continue
                mean, worst = sum(known) / len(known), min(known)
                (bar,) = ax.barh([y], [mean], height=bar_h * 0.9, color=PALETTE[a % len(PALETTE)])
                bar.set_gid(f"b{r}-{a}")
                tips[f"b{r}-{a}"] = (f"{e['label']} vs {adversary}: mean {percent(mean, suffix='%')}; "
                                     + ", ".join(f"{t} {percent(v, suffix='%')}" for t, v in values.items()))
                ax.plot([worst, worst], [y - bar_h * 0.45, y + bar_h * 0.45], color="#111", linewidth=2)
                ax.text(mean + 0.008, y, percent(mean, 0), va="center", fontsize=8, color="#374151")
        ax.set_yticks(range(len(entries)), [e["label"] for e in entries])
        ax.set_ylim(len(entries) - 0.5, -0.5)
        ax.set_xlim(0, 1.0)
        ax.xaxis.set_major_formatter(lambda v, _: f"{100 * v:.0f}%")
        ax.set_xlabel("PSR@1, mean over targets (bar) and worst target (black tick)")
        ax.grid(axis="x", color="#e5e7eb", linewidth=0.8)
        ax.set_axisbelow(True)
        ax.tick_params(axis="y", length=0)
        handles = [Rectangle((0, 0), 1, 1, color=PALETTE[a % len(PALETTE)], label=f"adversary: {adv}")
                   for a, adv in enumerate(adversaries)]
        handles.append(Line2D([], [], color="#111", linewidth=2, label="worst target"))
        ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(0, 1.0), ncol=len(handles), frameon=False)
        return inline_svg(fig, "adversaries", "PSR under each adversary per method", tips)
