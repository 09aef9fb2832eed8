"""A static, self-contained HTML report of one run: leaderboard table, trade-off chart, PSR maps, examples.

Reads ``RUN_DIR/leaderboard.json`` (written by ``bench leaderboard``) and, when present, ``RUN_DIR/examples/
<method>.npz`` (uint8 ``clean`` and ``protected``, K x H x W x 3). Writes one HTML file with everything inline:
CSS, a few lines of JS to sort the table, the charts as SVG (``bench.report.charts``), example crops as base64 PNG. No
server, no network. Missing values render as "n/a".
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bench.measures.registry import METRICS
from bench.report.charts import adversary_chart, heatmap_chart, tradeoff_chart
from bench.report.formatting import NA, number, percent
from bench.report.html_data import HEADLINE, get, is_ok, load_board, load_examples, normalise
from bench.report.html_table import leaderboard_table
from bench.report.tables import stability_notes, white_box_text
from bench.report.threat_profile import SCORES, score_of


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


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
        quality = " \u00b7 ".join([*(f"{m.label} {number(e.get(m.entry), m.fmt)}" for m in METRICS.quality()),
                                    f"{HEADLINE.label} worst {percent(e.get(HEADLINE.worst_field), suffix='%')}"])
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
#leaderboard tbody td:first-child,#leaderboard thead tr:last-child th:first-child{position:sticky;left:0;z-index:1;
 background:#fff;box-shadow:1px 0 0 var(--line)}
#leaderboard thead tr:last-child th:first-child{z-index:3;background:#f3f4f6}
#leaderboard thead tr:last-child th{top:26px}
.scroll.board{max-height:80vh;overflow:auto}
.picker{font-size:13px;margin:4px 0 8px}.picker label{margin-right:14px;cursor:pointer}
td.na{color:#9ca3af}
td.psr{font-weight:600}
tr.status-unavailable td,tr.status-failed td{color:#9ca3af;font-style:italic}
tr.status-failed td:nth-child(4){color:#b91c1c}
tbody tr:hover td{outline:1px solid #cbd5e1}
.plot svg.chart{display:block;width:100%;height:auto}
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
  document.querySelectorAll('input[name=score]').forEach(function(r){
    r.addEventListener('change',function(){
      document.querySelectorAll('[data-score]').forEach(function(d){d.hidden=d.getAttribute('data-score')!==r.value;});
    });
  });
  document.body.setAttribute('data-report-ready','1');
})();
"""


def _environment(board: dict) -> str:
    env = get(board, "run", "environment")
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
    # linkage scenarios: the share of clean photos whose nearest other photo is the user's
    linkage = sorted({k for v in clean.values() if isinstance(v, dict) for k in v if k.endswith("_top1_rate")})
    rows = "".join(f"<tr><td>{_esc(t)}</td><td>{percent(get(v, f'{HEADLINE.name}_accuracy'), suffix='%')}</td>"
                   f"<td>{percent(get(v, 'top5_accuracy'), suffix='%')}</td>"
                   + "".join(f"<td>{percent(get(v, k), suffix='%')}</td>" for k in linkage) + "</tr>"
                   for t, v in clean.items())
    heads = "".join(f"<th>{_esc(k[: -len('_top1_rate')])} rate</th>" for k in linkage)
    return ('<h3>Clean photos (no protection)</h3><table class="clean"><thead><tr><th>target</th>'
            f"<th>top-1 accuracy</th><th>top-5 accuracy</th>{heads}</tr></thead><tbody>{rows}</tbody></table>")


def _notes(board: dict) -> str:
    notes = []
    for e in board["entries"]:
        if not is_ok(e):
            notes.append(f"{e['label']}: {e.get('status')} ({e.get('reason') or 'no reason given'})")
    for t, info in (board.get("target_info") or {}).items():
        if isinstance(info, dict) and info.get("unavailable"):
            notes.append(f"target {t}: unavailable ({info['unavailable']})")
    notes += stability_notes(board)
    if any(isinstance(info, dict) and info.get("white_box") for info in (board.get("target_info") or {}).values()):
        notes.append(f"white-box targets (surrogates, or running a surrogate's weights): {white_box_text(board)}")
    return "<ul class='notes'>" + "".join(f"<li>{_esc(n)}</li>" for n in notes) + "</ul>" if notes else ""


def _scores(board: dict) -> list[str]:
    """The scores some entry has (``bench.report.threat_profile.SCORES``), the primary score first."""
    return [k for k in SCORES if k == "worst" or any(score_of(e, k, HEADLINE.name)[0] is not None
                                                      for e in board["entries"] if is_ok(e))]


def _score_picker(board: dict) -> str:
    options = "".join(f'<label><input type="radio" name="score" value="{k}"{" checked" if k == "worst" else ""}> '
                      f"{_esc(SCORES[k][0])}</label>" for k in _scores(board))
    return f'<div class="picker" role="radiogroup" aria-label="score">Score: {options}</div>'


def _tradeoffs(board: dict, axis: str) -> str:
    """One chart per score, all but the chosen one hidden (the picker's script switches them)."""
    parts = []
    for k in _scores(board):
        svg, note = tradeoff_chart(board, k, axis)
        hidden = "" if k == "worst" else " hidden"
        parts.append(f'<div class="plot" data-score="{k}"{hidden}>{svg}<p class="note">{_esc(note)}</p></div>')
    return "".join(parts)


def render_html(board: dict, examples: dict[str, tuple[np.ndarray, np.ndarray]] | None = None) -> str:
    board = normalise(board)
    run = board.get("run") if isinstance(board.get("run"), dict) else {}
    title = f"cloakbench report: {run.get('board') or run.get('suite') or 'run'}"
    ok = [e for e in board["entries"] if is_ok(e)]
    primary = run.get("primary_score") or HEADLINE.worst_field
    protocol = get(run, "protocol", "protocol")
    meta = " \u00b7 ".join(x for x in [f"suite {run.get('suite') or NA}", f"{len(run.get('users') or [])} users",
                                       f"{len(board['entries'])} entries ({len(ok)} ok)",
                                       f"{len(board.get('targets') or [])} targets",
                                       f"{len(board.get('adversaries') or [])} adversaries",
                                       *([f"{protocol} protocol"] if protocol else []),
                                       f"created {run.get('created') or NA}"])
    sections = [
        "<section><h2>Leaderboard</h2>"
        f'<p class="small">Sorted by the primary score <b>{_esc(primary)}</b>: the top-1 protection success rate '
        "(share of protected probe photos whose identity the recogniser does not rank first) in the worst cell "
        "over targets \u00d7 adversaries. Click a header to sort; hover a PSR cell for its 95% bootstrap "
        f'interval over users.</p><div class="scroll board">{leaderboard_table(board)}</div>{_notes(board)}</section>',
        '<section><h2>Protection against visibility</h2><p class="small">Up and to the left is better: stronger '
        "protection, less visible; the bar through a mark is the score's 95% interval over users. A method's "
        "scenarios share its photos, so they sit on one vertical line. Hover a mark for its numbers.</p>"
        f"{_score_picker(board)}{_tradeoffs(board, 'visibility')}</section>",
        '<section><h2>Protection against cost</h2><p class="small">Up and to the left is better: stronger '
        "protection for less compute per protected photo (a universal mask's fitting spread over the user's query "
        "photos of this run: a mask reused on more photos costs less per photo). The score follows the choice "
        f"above.</p>{_tradeoffs(board, 'cost')}</section>",
        '<section><h2>PSR@1 under each adversary</h2><p class="small">Bars: PSR@1 averaged over targets under '
        "each adversary; black tick: the worst target. Hover a bar for every target.</p>"
        f'<div class="plot">{adversary_chart(board)}</div></section>',
        '<section><h2>PSR@1 by method and target</h2><p class="small">Hover a cell for its 95% bootstrap interval '
        f'over users and its PSR@5.</p><div class="plot scroll">{heatmap_chart(board)}</div></section>',
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
