"""Real ``bench run`` processes: two runs into one folder never compute the same task, and a run killed with
SIGKILL at random points resumes to a leaderboard identical, bit for bit, to an uninterrupted run's."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from bench.core.paths import embedded_data_root

REPO = Path(__file__).resolve().parents[2]
TIMING = {"fit_s", "protect_ms_per_photo"}  # wall-clock measurements: the only numbers allowed to differ


def bench_run(out: Path, *extra: str, users: int = 2) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "bench.cli", "run", "--suite", "smoke", "--users", str(users),
           "--gallery-identities", str(3 * users), "--set", "pgd.steps=2", "--adversaries", "none,jpeg-75",
           "--data-root", str(embedded_data_root()), "--out", str(out), "--threads", "1", *extra]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO)


def finish(proc: subprocess.Popen, timeout: float = 900) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-3000:]
    return out


def query(run_dir: Path, sql: str) -> list[tuple]:
    """Read the store of a run that may be live (read-only; an absent or half-made store reads as empty)."""
    path = run_dir / "store.sqlite"
    if not path.exists():
        return []
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30) as db:
            return db.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []


def wait_for(condition, proc: subprocess.Popen, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"the run ended first: {proc.communicate()[0][-2000:]}"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def comparable(run_dir: Path) -> tuple[dict, list[tuple]]:
    """The leaderboard and every result row, without what legitimately differs between invocations: wall-clock
    timings, creation times, the invocation history and the folder's own path."""
    board = json.loads((run_dir / "leaderboard.json").read_text())
    for key in ("created", "environment", "invocations", "source"):
        board["run"].pop(key, None)
    for entry in board["entries"]:
        entry.pop("fit_s_per_user", None)
        entry.pop("protect_ms_per_photo", None)
    rows = sorted(r for r in query(run_dir, "SELECT * FROM results") if r[-2] not in TIMING)
    return board, rows


def lost_attempts(run_dir: Path) -> Counter:
    """Per process: task starts that did not finish (a later attempt of the same task did)."""
    attempts = query(run_dir, "SELECT key, pid FROM attempts ORDER BY started")
    last = {key: i for i, (key, _) in enumerate(attempts)}
    return Counter(pid for i, (key, pid) in enumerate(attempts) if last[key] != i)


@pytest.fixture(scope="module")
def shared_folder_runs(tmp_path_factory):
    """Two runs started together into one folder: the one that takes the folder second waits for the first."""
    run_dir = tmp_path_factory.mktemp("shared") / "run"
    runs = [bench_run(run_dir), bench_run(run_dir)]
    outputs = [" ".join(finish(proc).split()) for proc in runs]
    return run_dir, [proc.pid for proc in runs], outputs


def test_a_second_run_into_a_busy_folder_waits_and_computes_nothing_twice(shared_folder_runs):
    run_dir, pids, outputs = shared_folder_runs
    waited = [i for i, out in enumerate(outputs) if "waiting for it to finish" in out]
    assert len(waited) == 1, outputs
    holder, waiter = pids[1 - waited[0]], outputs[waited[0]]
    assert f"is in use by pid {holder} on host" in waiter and "6 of 6 tasks already done" in waiter
    starts = Counter(key for (key,) in query(run_dir, "SELECT key FROM attempts"))
    assert len(starts) == 6 and set(starts.values()) == {1}, starts  # every task computed once, by the holder


def test_a_run_told_not_to_wait_names_who_holds_the_folder(tmp_path):
    from bench.run.folder_lock import run_lock

    run_dir = tmp_path / "run"
    with run_lock(run_dir):  # this test process holds the folder, as another run would
        proc = bench_run(run_dir, "--no-wait")
        out, _ = proc.communicate(timeout=600)
    flat = " ".join(out.split())
    assert proc.returncode == 2 and f"is in use by pid {os.getpid()} on host" in flat and "since" in flat
    assert not (run_dir / "store.sqlite").exists()


def test_killed_once_in_a_task_then_resumed_gives_the_same_leaderboard(shared_folder_runs, tmp_path):
    reference = shared_folder_runs[0]
    run_dir = tmp_path / "run"
    proc = bench_run(run_dir)
    # kill while the second task computes: one task done, one lost in flight
    wait_for(lambda: len(query(run_dir, "SELECT key FROM attempts")) >= 2, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = query(run_dir, "SELECT COUNT(*) FROM tasks WHERE status = 'done'")[0][0]
    finish(bench_run(run_dir))
    assert comparable(run_dir) == comparable(reference)
    assert sum(lost_attempts(run_dir).values()) <= 1 and done_before >= 1


@pytest.mark.slow
def test_killed_at_twenty_random_points_then_resumed_gives_the_same_leaderboard(tmp_path):
    """SIGKILL at ``BENCH_KILLS`` (default 20) random moments of runs that still have work to do, each run resuming
    the last; half the moments drawn over a whole run's span (start-up, alignment, loading, tasks), half over its
    task phase. A run that reaches its end is compared with an uninterrupted run and the next round starts in a new
    folder. Prints the figures: tasks lost per kill and whether every leaderboard was identical."""
    kills = int(os.environ.get("BENCH_KILLS", "20"))
    seed = int(os.environ.get("BENCH_KILL_SEED", str(random.SystemRandom().randrange(10**6))))
    rng = random.Random(seed)
    reference = tmp_path / "reference"
    t0 = time.monotonic()
    finish(bench_run(reference, users=3))
    span = time.monotonic() - t0
    starts = query(reference, "SELECT started FROM attempts ORDER BY started")
    task_span = query(reference, "SELECT MAX(finished) FROM tasks")[0][0] - starts[0][0]
    log, rounds, identical = [], 0, []
    run_dir = tmp_path / "round0"
    while sum(item["killed"] for item in log) < kills:
        assert len(log) < 4 * kills, "runs keep finishing before they are killed"
        proc = bench_run(run_dir, users=3)
        in_tasks = len(log) % 2 == 1
        if in_tasks:  # from this process's first task start
            mine = f"SELECT COUNT(*) FROM attempts WHERE pid = {proc.pid}"
            while proc.poll() is None and not (query(run_dir, mine) or [(0,)])[0][0]:
                time.sleep(0.1)
            delay = rng.uniform(0, task_span)
        else:
            delay = rng.uniform(0.5, span)
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        killed = proc.returncode == -signal.SIGKILL
        log.append({"round": rounds, "pid": proc.pid, "phase": "tasks" if in_tasks else "any", "after_s": round(delay, 1),
                    "killed": killed})
        if not killed:  # this run reached its end: compare, then a new round
            assert proc.returncode == 0, proc.communicate()[0][-3000:]
            identical.append(comparable(run_dir) == comparable(reference))
            rounds += 1
            run_dir = tmp_path / f"round{rounds}"
    finish(bench_run(run_dir, users=3))
    identical.append(comparable(run_dir) == comparable(reference))
    lost: Counter = Counter()
    for folder in tmp_path.glob("round*"):
        lost.update(lost_attempts(folder))
    killed = [item for item in log if item["killed"]]
    for item in killed:
        item["lost"] = lost.get(item["pid"], 0)
    summary = {"seed": seed, "kills": len(killed), "kills_in_task_phase": sum(i["phase"] == "tasks" for i in killed),
               "rounds": rounds + 1, "run_span_s": round(span, 1), "task_span_s": round(task_span, 1),
               "tasks_per_run": query(reference, "SELECT COUNT(*) FROM tasks")[0][0],
               "tasks_redone": sum(i["lost"] for i in killed),
               "max_tasks_redone_per_kill": max(i["lost"] for i in killed),
               "identical": identical, "log": log}
    print("kill-and-resume:", json.dumps(summary))
    assert len(killed) >= kills and all(identical) and summary["max_tasks_redone_per_kill"] <= 1
