"""`bench report`: the HTML report renders its table and plots in a real (headless) browser."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from bench.cli import main
from bench.report.charts import tradeoff_chart
from bench.report.html import render_html, write_report
from bench.report.html_data import normalise
from bench.report.label_placement import place_labels

RESULTS = Path(__file__).resolve().parents[2] / "results"

TARGETS = ["sface", "dlib", "faceres"]
ADVERSARIES = ["none", "jpeg", "denoise"]


def _cell(top1: float, top5: float) -> dict:
    return {"top1": top1, "top1_ci": [max(top1 - 0.06, 0), min(top1 + 0.05, 1)], "top5": top5,
            "top5_ci": [max(top5 - 0.08, 0), min(top5 + 0.06, 1)]}


def _entry(method: str, kind: str, level: float, **extra) -> dict:
    """A leaderboard entry whose PSR falls with the adversary's strength and varies across targets."""
    psr = {t: {a: _cell(round(level * (1 - 0.18 * j) * (1 - 0.07 * i), 3),
                        round(level * (1 - 0.18 * j) * (1 - 0.07 * i) * 0.8, 3))
               for j, a in enumerate(ADVERSARIES)} for i, t in enumerate(TARGETS)}
    top1 = [c["top1"] for per in psr.values() for c in per.values()]
    entry = {"method": method, "kind": kind, "scenario": "probe", "status": "ok", "reason": None,
             "budget": {"linf": 16 / 255}, "psr": psr, "psr_top1_worst": min(top1),
             "psr_top1_mean": sum(top1) / len(top1), "ssim": 0.95 - 0.3 * level * 0.3, "psnr": 38 - 6 * level,
             "lpips": 0.02 + 0.12 * level, "fit_s_per_user": 12.5, "protect_ms_per_photo": 0.4, "device": "cpu",
             "users": 10, "probes": 81, "authorized_accuracy": None}
    entry.update(extra)
    return entry


def make_run_dir(root: Path, faces: dict) -> Path:
    """A hand-made run folder in the harness' leaderboard.json contract, with example crops of real faces."""
    run = root / "run"
    (run / "examples").mkdir(parents=True)
    fawkes = _entry("fawkes", "per-image", 0.55, lpips=None, fit_s_per_user=None, protect_ms_per_photo=5200.0)
    fawkes["psr"]["dlib"]["denoise"] = {"status": "failed", "reason": "out of memory"}
    entries = [
        _entry("chameleon", "universal", 0.93, authorized_accuracy={"sface": 0.99, "dlib": 0.97, "faceres": None}),
        _entry("opom", "universal", 0.78),
        fawkes,
        _entry("uap", "universal", 0.31),
        {"method": "lowkey", "kind": "per-image", "scenario": "probe", "status": "unavailable",
         "reason": "needs the ArcFace IR-152 weights: set BENCH_WEIGHTS_IR152", "budget": None, "psr": {}},
        {"method": "tip-im", "status": "failed", "reason": "protect task failed: CUDA error", "psr_top1_worst": None},
    ]
    board = {
        "run": {"suite": "probe-small", "created": "2026-11-22T01:30:00+00:00",
                "environment": {"torch": "2.14.1", "device": "cpu", "threads": 2, "git": "6a0d588"},
                "primary_score": "psr_top1_worst"},
        "targets": TARGETS, "adversaries": ADVERSARIES, "entries": entries,
        "target_info": {"sface": {"white_box": True}, "dlib": {}, "faceres": {}},
        "clean": {"sface": {"top1_accuracy": 0.991, "top5_accuracy": 1.0},
                  "dlib": {"top1_accuracy": 0.97, "top5_accuracy": 0.995}, "faceres": {}},
    }
    (run / "leaderboard.json").write_text(json.dumps(board, indent=2))
    clean = np.stack([(faces[k].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
                      for k in ("person_a_1", "person_b_1", "impostor_1")])
    rng = np.random.default_rng(0)
    for method, eps in (("chameleon", 16), ("opom", 8), ("fawkes", 6)):
        # a universal method adds one mask to every photo; the per-image one a different pattern per photo
        shape = clean.shape[1:] if method != "fawkes" else clean.shape
        mask = rng.integers(-eps, eps + 1, size=shape)
        protected = np.clip(clean.astype(np.int16) + mask, 0, 255).astype(np.uint8)
        np.savez(run / "examples" / f"{method}.npz", clean=clean, protected=protected)
    return run


@pytest.fixture
def run_dir(tmp_path, wild_faces) -> Path:
    return make_run_dir(tmp_path, wild_faces)


def _chromium() -> str | None:
    return next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)


def _chromium_args(profile: Path) -> list[str]:
    return ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", f"--user-data-dir={profile}"]


def test_report_command_writes_self_contained_html(run_dir):
    assert main(["report", str(run_dir)]) == 0
    page = (run_dir / "report.html").read_text()
    # visibility and cost trade-offs (the fixture has no per-user values: the worst case only), adversaries, heatmap
    assert "<table id=\"leaderboard\"" in page and page.count("<svg") == 4
    assert not re.search(r"(src|href)=\"(https?:)?//", page), "the report must not load anything from the network"
    assert page.count('<img src="data:image/png;base64,') == 3 * 3 * 3  # 3 methods x 3 crops x (clean, protected, mask)
    # missing values render as n/a; unavailable and failed methods keep their reasons
    assert ">n/a<" in page and "BENCH_WEIGHTS_IR152" in page and "CUDA error" in page


def test_report_renders_with_missing_fields(tmp_path):
    board = {"entries": [{"method": "bare"}, {"status": "failed"}, "not-an-entry"], "targets": ["t"],
             "adversaries": None}
    page = render_html(board)
    assert "bare" in page and "entry 2" in page and page.count("<svg") == 4
    # without any LPIPS the trade-off plot falls back to SSIM
    board["entries"][0].update(ssim=0.9, psr_top1_worst=0.4, psr_top1_mean=0.5)
    assert 'aria-label="PSR@1 worst case, every target x adversary against 1 - SSIM' in render_html(board)


def test_report_names_scenarios_when_a_run_has_several(run_dir):
    board = json.loads((run_dir / "leaderboard.json").read_text())
    gallery = dict(board["entries"][0], scenario="gallery", psr_top1_worst=0.2)
    board["entries"].insert(1, gallery)
    page = render_html(board)
    assert "chameleon (probe)" in page and "chameleon (gallery)" in page and "tip-im (" not in page
    assert ">gallery</td>" in page


def test_report_explains_missing_leaderboard(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "bench leaderboard" in capsys.readouterr().err


@pytest.mark.skipif(_chromium() is None, reason="NO CHROMIUM BINARY: the browser rendering check did not run; "
                    "install Debian's `chromium` package (apt-get install -y chromium)")
def test_report_renders_in_headless_chromium(run_dir, tmp_path):
    out = write_report(run_dir, tmp_path / "page" / "report.html")
    proc = subprocess.run([_chromium(), *_chromium_args(tmp_path / "profile"), "--virtual-time-budget=5000",
                           "--dump-dom", out.as_uri()], capture_output=True, text=True, timeout=120)
    dom = proc.stdout
    assert proc.returncode == 0 and dom, proc.stderr[-2000:]
    assert 'data-report-ready="1"' in dom, "the report's script did not run"
    body = dom.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    assert body.count("<tr") == 6
    svgs = re.findall(r"<svg.*?</svg>", dom, flags=re.S)
    assert len(svgs) == 4
    for svg in svgs:  # every chart holds drawn marks, not an empty frame
        assert len(re.findall(r"<path\b", svg)) >= 10
    # one hover note per mark: 3 points (chameleon, opom, uap have LPIPS; fawkes has none), 4 on the cost chart
    # (fawkes has a protect time), 4 entries x 3 adversaries of bars, 4 entries x 3 targets x 3 adversaries of
    # heatmap cells
    assert [len(re.findall(r"<title>", svg)) for svg in svgs] == [3, 4, 12, 36]
    assert "Not plotted (no LPIPS or no worst case, every target x adversary PSR): fawkes" in dom
    assert dom.count('<img src="data:image/png;base64,') == 27


@pytest.mark.skipif(_chromium() is None, reason="NO CHROMIUM BINARY: install Debian's `chromium` package")
def test_report_table_sorts_on_click(run_dir, tmp_path):
    """Clicking the 'LPIPS' header sorts rows by LPIPS, n/a last (checked by a script run in the page)."""
    out = write_report(run_dir, tmp_path / "report.html")
    page = out.read_text()
    probe = ("<script>(function(){var th=[].slice.call(document.querySelectorAll('th[data-col]'))"
             ".filter(function(t){return t.textContent.indexOf('LPIPS')===0;})[0]; th.click();"
             "var names=[].slice.call(document.getElementById('leaderboard').tBodies[0].rows)"
             ".map(function(r){return r.cells[0].textContent;});"
             "document.body.setAttribute('data-sorted', names.join(','));})();</script></body>")
    out.write_text(page.replace("</body>", probe))
    proc = subprocess.run([_chromium(), *_chromium_args(tmp_path / "profile"), "--dump-dom", out.as_uri()],
                          capture_output=True, text=True, timeout=120)
    sorted_names = re.search(r'data-sorted="([^"]*)"', proc.stdout)
    assert sorted_names, proc.stderr[-2000:]
    # first click sorts numbers descending (highest LPIPS first); entries without LPIPS go last
    assert sorted_names.group(1).split(",")[:3] == ["chameleon", "opom", "uap"]
    assert set(sorted_names.group(1).split(",")[3:]) == {"fawkes", "lowkey", "tip-im"}


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_labels_of_a_dense_cluster_do_not_overlap():
    """Eight points within 24 x 48 px (as dense as the published OPOM cluster): every label gets a spot clear of every mark and every other label."""
    for seed in range(5):
        rng = np.random.default_rng(seed)
        points = [(300 + rng.uniform(0, 24), 200 + rng.uniform(0, 48)) for _ in range(8)]
        spots = place_labels(points, [(110, 14)] * len(points), (0, 0, 900, 540), points, [])
        boxes = [s[0] for s in spots if s is not None]
        assert len(boxes) == len(points)
        assert not any(_overlap(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
        assert not any(_overlap(box, (x - 4, y - 4, x + 4, y + 4)) for box in boxes for x, y in points)
        assert all(0 <= b[0] and b[2] <= 900 and 0 <= b[1] and b[3] <= 540 for b in boxes)


def test_tradeoff_labels_every_method_of_the_published_board():
    """The published leaderboard (29 entries, a dense OPOM cluster): each method is labelled once, in the chart."""
    board = normalise(json.loads((RESULTS / "leaderboard.json").read_text()))
    svg, note = tradeoff_chart(board)
    assert "No room" not in note and "Not plotted" not in note
    assert 'aria-label="PSR@1 worst case' in svg
    assert svg.count("<title>") == sum(e.get("status") == "ok" for e in board["entries"])


@pytest.mark.skipif(_chromium() is None, reason="NO CHROMIUM BINARY: install Debian's `chromium` package")
def test_published_report_picks_its_score_and_keeps_the_method_column_in_view(tmp_path):
    """The published quick board: the score picker shows one chart per axis, the method column stays put when the
    table scrolls sideways, the threat profile and PSR@5 sit beside the worst case, and the legend is off the plot."""
    out = write_report(RESULTS, tmp_path / "report.html")
    page = out.read_text()
    assert [k for k in ("worst", "no_adversary", "unseen", "adaptive") if f'value="{k}"' in page] == [
        "worst", "no_adversary", "unseen", "adaptive"]
    assert ">oblivious<" in page and ">transforms<" in page and ">adaptive<" in page and ">PSR@5<" in page
    probe = ("<script>(function(){var r=document.querySelector('input[value=unseen]'); r.click();"
             "var shown=[].slice.call(document.querySelectorAll('[data-score]')).filter(function(d){return !d.hidden;})"
             ".map(function(d){return d.getAttribute('data-score');});"
             "var box=document.querySelector('.scroll.board'); box.scrollLeft=600;"
             "var cell=document.getElementById('leaderboard').tBodies[0].rows[0].cells[0];"
             "var left=cell.getBoundingClientRect().left-box.getBoundingClientRect().left;"
             "document.body.setAttribute('data-probe', shown.join(',')+'|'+Math.round(left)+'|'+box.scrollLeft);"
             "})();</script></body>")
    out.write_text(page.replace("</body>", probe))
    proc = subprocess.run([_chromium(), *_chromium_args(tmp_path / "profile"), "--window-size=1000,900",
                           "--dump-dom", out.as_uri()], capture_output=True, text=True, timeout=120)
    found = re.search(r'data-probe="([^"]*)"', proc.stdout)
    assert found, proc.stderr[-2000:]
    shown, left, scrolled = found.group(1).split("|")
    assert shown == "unseen,unseen"  # the visibility and the cost chart of the chosen score
    assert int(scrolled) > 0 and abs(int(left)) <= 1  # scrolled sideways, the method column did not move
