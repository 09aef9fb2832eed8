"""How a method's result rows become the scores of its leaderboard entry (``bench.report.leaderboard.build``):
per-user metrics aggregated as the registry declares, the declared PSR measures per target x adversary cell with
95% intervals, the headline's per-user values, worst case and mean, and entries with missing cells marked
incomplete."""

from __future__ import annotations

from typing import Any

import pandas as pd

from bench.measures.psr import summarise
from bench.measures.registry import METRICS, Metric

# the reason of a cell whose task has not run yet (a run still under way): shown "pending", not "failed"
NOT_COMPUTED = "not computed yet"

ROW_COLUMNS = ["task_key", "method", "scenario", "adversary", "target", "user", "metric", "value"]


def result_frame(rows: list[dict]) -> pd.DataFrame:
    """Result rows (``RunStore.rows``) as a table, in the store's order."""
    return pd.DataFrame(rows, columns=ROW_COLUMNS)


def metric_values(frame: pd.DataFrame, metric: str) -> pd.Series:
    """The per-user values of one metric."""
    return frame.loc[frame["metric"] == metric, "value"]


def mean_or_none(values: pd.Series) -> float | None:
    return None if values.empty else float(values.mean(skipna=False))


def aggregate(values: pd.Series, metric: Metric) -> float | int | None:
    """One metric over users, as the registry declares (a sum of an integer metric stays an integer)."""
    if metric.aggregate == "sum":
        total = values.sum(skipna=False)
        return int(total) if metric.fmt.endswith("d") else float(total)
    if metric.aggregate == "max":
        return None if values.empty else float(values.max(skipna=False))
    return mean_or_none(values)


def mark_incomplete(entry: dict[str, Any], cells: int) -> None:
    """An entry with failed or missing target x adversary cells is ``incomplete`` (never ranked): its worst case
    covers the cells that finished only, and the missing ones can only lower it."""
    missing = entry.get("failed_cells") or {}
    if not missing or entry["status"] != "ok":
        return
    entry.update(status="incomplete", reason=(
        f"{len(missing)} of {cells} target x adversary cell(s) failed or not computed ({', '.join(missing)}: "
        f"{'; '.join(sorted(set(missing.values())))[:300]}); the worst case is over the other "
        f"{cells - len(missing)} only; rerun the same command to compute them"))


def scenario_entry(entry: dict[str, Any], eval_rows: dict[tuple[str, str], pd.DataFrame | None],
                    scenario: str) -> dict[str, Any]:
    """Fill one method's entry for one scenario: the declared PSR measures' cells with intervals, and the
    headline's per-user values, worst case and mean."""
    headline = METRICS.headline()
    declared = sorted(METRICS.psr(), key=lambda p: p.row)  # cells list their measures by name
    cells = []
    for (aname, tname), rows in eval_rows.items():
        if rows is None:
            reason = (entry.get("failed_cells") or {}).get(f"{tname}|{aname}")
            entry["psr"].setdefault(tname, {})[aname] = {
                "status": "pending" if reason == NOT_COMPUTED else "failed", "reason": reason}
            continue
        mine = rows[rows["scenario"] == scenario]
        cell: dict[str, Any] = {}
        for measure in declared:
            values = metric_values(mine, measure.row)
            if not values.empty:
                s = summarise(values.tolist())
                cell[measure.name], cell[f"{measure.name}_ci"] = s["mean"], s["ci"]
        missed = metric_values(mine, "missed")
        if not missed.empty:  # photo space: photos the attacker's detector found no face in (counted protected)
            cell["missed"] = int(missed.sum())
        entry["psr"].setdefault(tname, {})[aname] = cell
        if headline.name in cell:
            cells.append(cell[headline.name])
            # per user (mean over seeds): what paired comparisons and tied ranks resample (bench.measures.ranking)
            per_user = mine[mine["metric"] == headline.row].groupby("user")["value"].mean()
            entry.setdefault(headline.per_user_field, {})[f"{tname}|{aname}"] = {
                str(u): round(float(v), 6) for u, v in per_user.items()}
    entry[headline.worst_field] = min(cells) if cells else None
    entry[headline.mean_field] = mean_or_none(pd.Series(cells, dtype=float))
    return entry
