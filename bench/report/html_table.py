"""The report's sortable leaderboard table: one row per entry, PSR cells coloured, every measure from METRICS.

Each column is (group, header, cell) where cell(entry) -> (sort value, text, tooltip). The measure columns come
from ``bench.report.tables.measures()`` grouped by the metric's group (quality, budget, cost), so a metric registered in
``bench.measures.registry`` shows up here with no edit.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

from matplotlib.colors import to_hex

from bench.measures.registry import METRICS, Metric
from bench.report.chart_style import PSR_CMAP
from bench.report.formatting import NA, cell_status, finite, number, percent
from bench.report.html_data import HEADLINE, get, psr_cell
from bench.report.tables import counts, mean_authorized, measures, worst_text
from bench.report.threat_profile import threat_profile, worst_of

Cell = Callable[[dict], tuple[Any, str, "str | None"]]


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _text(key: str) -> Cell:
    return lambda e: (str(e.get(key) or NA), str(e.get(key) or NA), None)


def _metric(m: Metric) -> Cell:
    return lambda e: (finite(e.get(m.entry)), number(e.get(m.entry), m.fmt), None)


def _pct(key: str) -> Cell:
    return lambda e: (finite(e.get(key)), percent(e.get(key), suffix="%"), None)


def _headline_worst(cells: int) -> Cell:
    """The worst case of the headline measure, said to be over part of the cells when some are missing."""
    def cell(e: dict) -> tuple[Any, str, str | None]:
        v = finite(e.get(HEADLINE.worst_field))
        part = worst_text(e, cells)
        return v, percent(v, suffix="%") + part, e.get("reason") if part else None
    return cell


def _psr(target: str, adversary: str) -> Cell:
    def cell(e: dict) -> tuple[Any, str, str | None]:
        c = psr_cell(e, target, adversary)
        v = finite(c.get(HEADLINE.name))
        ci = c.get(f"{HEADLINE.name}_ci")
        tip = f"95% CI {percent(ci[0], suffix='%')} to {percent(ci[1], suffix='%')}" \
            if isinstance(ci, list) and len(ci) == 2 else None
        if finite(c.get("top5")) is not None:
            tip = (tip + "; " if tip else "") + f"PSR@5 {percent(c.get('top5'), suffix='%')}"
        if cell_status(c):
            return v, cell_status(c), f"{cell_status(c)}: {c.get('reason')}"
        return v, percent(v, suffix="%"), tip
    return cell


def _profile(profiles: dict[int, dict], threat: str) -> Cell:
    return lambda e: (profiles[id(e)][threat], percent(profiles[id(e)][threat], suffix="%"), None)


def _worst(name: str) -> Cell:
    return lambda e: (worst_of(e, name), percent(worst_of(e, name), suffix="%"), None)


def _authorized(e: dict) -> tuple[Any, str, str | None]:
    acc = e.get("authorized_accuracy")
    values = {t: finite(v) for t, v in acc.items()} if isinstance(acc, dict) else {}
    mean = mean_authorized({"authorized_accuracy": values})
    tip = ", ".join(f"{t} {percent(v, suffix='%')}" for t, v in values.items()) if mean is not None else None
    return mean, percent(mean, suffix="%"), tip


def _declared_budget(e: dict) -> tuple[Any, str, str | None]:
    """The budget the method declares: L-inf in 1/255 steps, any other kind as its number."""
    budget = get(e, "budget")
    if not isinstance(budget, dict) or not any(finite(v) is not None for v in budget.values()):
        return None, NA, None
    parts = [f"{k} {number(255 * v, '.3g')}/255" if k == "linf" else f"{k} {number(v, '.4g')}"
             for k, v in budget.items() if finite(v) is not None]
    first = next(finite(v) for v in budget.values() if finite(v) is not None)
    return first, ", ".join(parts), None


def columns(board: dict) -> list[tuple[str, str, Cell]]:
    """(group, header, cell) for every table column."""
    cols: list[tuple[str, str, Cell]] = [
        # the label names the scenario when a board has several: the sticky column alone tells rows apart
        ("", "method", lambda e: (str(e.get("label") or e.get("method")), str(e.get("label") or e.get("method")), None)),
        ("", "kind", _text("kind")), ("", "scenario", _text("scenario")),
        ("", "status", lambda e: (str(e.get("status") or NA), str(e.get("status") or NA), e.get("reason") or None)),
        (HEADLINE.label, "worst", _headline_worst(len(board.get("targets") or []) * len(board.get("adversaries") or []))),
        (HEADLINE.label, "mean", _pct(HEADLINE.mean_field)),
    ]
    # the threat-model profile beside the worst case: methods tied there can differ against weaker adversaries
    profiles = {id(e): threat_profile(e, HEADLINE.name) for e in board["entries"]}
    for threat in ("oblivious", "transforms", "adaptive"):
        if any(p[threat] is not None for p in profiles.values()):
            cols.append((f"{HEADLINE.label} by threat", threat, _profile(profiles, threat)))
    # every other declared PSR measure (PSR@5, verification at a FAR ...) by its worst cell
    for measure in METRICS.psr():
        if not measure.headline and any(worst_of(e, measure.name) is not None for e in board["entries"]):
            cols.append(("other PSR, worst", measure.label, _worst(measure.name)))
    for t in board.get("targets") or []:
        cols += [(f"{HEADLINE.label} on {t}", a, _psr(t, a)) for a in board.get("adversaries") or []]
    shown = measures(board)
    groups = list(dict.fromkeys(m.group for m in shown))
    for group in groups:
        if group == "budget":
            cols.append((group, "declared", _declared_budget))
        cols += [(group, m.label, _metric(m)) for m in shown if m.group == group]
    cols.append(("run", "users", lambda e: (finite(e.get("users")), number(e.get("users"), "d"), None)))
    cols += [("run", m.label, _metric(m)) for m in counts()]
    cols += [("run", "device", _text("device")), ("run", "key-holder top-1", _authorized)]
    return cols


def leaderboard_table(board: dict) -> str:
    cols = columns(board)
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
            classes = ["na"] if text == NA else []
            style = ""
            if (group.startswith(HEADLINE.label) or group.startswith("other PSR")) and isinstance(value, float):
                color = to_hex(PSR_CMAP(min(max(value, 0.0), 1.0)))
                style = f' style="background:{color};color:{"#fff" if value < 0.6 else "#111"}"'
                classes.append("psr")
            attrs = f' data-sort="{_esc(sort)}"' + (f' title="{_esc(tip)}"' if tip else "")
            attrs += f' class="{" ".join(classes)}"' if classes else ""
            cells.append(f"<td{attrs}{style}>{_esc(text)}</td>")
        status = str(e.get("status") or "ok")
        rows.append(f'<tr class="status-{_esc(status)}" data-rank="{rank}">{"".join(cells)}</tr>')
    return (f'<table id="leaderboard"><thead><tr>{head1}</tr><tr>{head2}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')
