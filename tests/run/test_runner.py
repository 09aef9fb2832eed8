"""End to end on real faces (embedded LFW subset, SFace): plan, store, resume after an interruption, leaderboard."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from rich.console import Console

from bench.core.paths import embedded_data_root
from bench.report import board_merge, leaderboard, publish, tables
from bench.run.runner import Reporter, Runner
from bench.run.store import RunStore
from bench.run.suites import get_suite


def tiny_suite():
    return get_suite("smoke").with_overrides(
        users=2, gallery_identities=6, method_overrides={"pgd": {"steps": 2}}, adversaries=("none", "jpeg-75"),
        scenarios=("probe", "gallery"),
    )


class InterruptAfter(Reporter):
    """Stops the run like Ctrl-C after ``n`` tasks have finished."""

    def __init__(self, n: int):
        self.n, self.in_tasks, self.done = n, False, 0

    def phase(self, name, total):
        self.in_tasks = name == "tasks"

    def advance(self, label=""):
        if self.in_tasks:
            self.done += 1
            if self.done == self.n:
                raise KeyboardInterrupt


class CountTasks(Reporter):
    def __init__(self):
        self.in_tasks, self.executed, self.messages = False, [], []

    def phase(self, name, total):
        self.in_tasks = name == "tasks"

    def advance(self, label=""):
        if self.in_tasks:
            self.executed.append(label)

    def message(self, text):
        self.messages.append(text)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    suite = tiny_suite()
    with pytest.raises(KeyboardInterrupt):
        Runner(suite, run_dir, data_root=str(embedded_data_root()), reporter=InterruptAfter(3)).run()
    interrupted = RunStore(run_dir)
    done_before = {r[0] for r in interrupted.db.execute("SELECT label FROM tasks WHERE status = 'done'")}
    interrupted.close()
    counter = CountTasks()
    plan = Runner(suite, run_dir, data_root=str(embedded_data_root()), reporter=counter).run()
    return run_dir, plan, done_before, counter


def test_resume_skips_finished_tasks(finished_run):
    run_dir, plan, done_before, counter = finished_run
    assert len(done_before) == 3
    assert not (set(counter.executed) & done_before), "a finished task ran again"
    # clean/sface + 2 protect + 2 adversaries x 1 target eval + 1 clean eval = 6 tasks
    assert len(done_before) + len(counter.executed) == 6
    again = CountTasks()
    Runner(tiny_suite(), run_dir, data_root=str(embedded_data_root()), reporter=again).run()
    assert again.executed == [] and "6 of 6 tasks already done" in again.messages


def test_changed_config_recomputes_only_what_it_touches(finished_run, tmp_path):
    run_dir = tmp_path / "copy"
    shutil.copytree(finished_run[0], run_dir)
    counter = CountTasks()
    changed = tiny_suite().with_overrides(adversaries=("none", "jpeg-50"))
    Runner(changed, run_dir, data_root=str(embedded_data_root()), reporter=counter).run()
    assert counter.executed == ["eval/pgd/jpeg-50/sface"]


def test_store_records_environment_and_results(finished_run):
    run_dir, plan, _, _ = finished_run
    store = RunStore.open_existing(run_dir)
    env = store.get_meta("environment")
    assert {"torch", "python", "device", "threads", "git_revision", "cloakbench"} <= set(env)
    assert store.get_meta("suite")["name"] == "smoke"
    board = leaderboard.build(store)
    assert sorted(e["scenario"] for e in board["entries"]) == ["gallery", "probe"]
    gallery = next(e for e in board["entries"] if e["scenario"] == "gallery")
    assert 0 <= gallery["psr"]["sface"]["none"]["top1"] <= 1
    entry = next(e for e in board["entries"] if e["scenario"] == "probe")
    assert entry["method"] == "pgd" and entry["status"] == "ok" and entry["kind"] == "per-image"
    assert entry["users"] == 2 and entry["probes"] >= 2
    assert entry["linf_max"] <= 8 / 255 + 1e-6
    assert 0.5 < entry["ssim"] < 1 and 25 < entry["psnr"] < 60
    cell = entry["psr"]["sface"]["none"]
    assert 0 <= cell["top1"] <= 1 and cell["top1_ci"][0] <= cell["top1"] <= cell["top1_ci"][1]
    assert cell["top5"] <= cell["top1"]
    assert entry["psr_top1_worst"] == min(c["top1"] for c in entry["psr"]["sface"].values())
    assert board["clean"]["sface"]["top1_accuracy"] > 0.5  # SFace recognises clean photos
    assert (run_dir / "examples" / "pgd.npz").exists()


def test_leaderboard_files_regenerate_from_store(finished_run):
    run_dir, _, _, _ = finished_run
    paths = leaderboard.write(run_dir, ("json", "csv", "md"))
    board = json.loads(paths["json"].read_text())
    assert isinstance(board["entries"][0]["psr_top1_worst"], float)
    csv_text = paths["csv"].read_text()
    assert csv_text.splitlines()[0].startswith("method,kind,scenario,status,psr_top1_worst")
    assert "psr_top1[sface|jpeg-75]" in csv_text
    md = paths["md"].read_text()
    assert md.startswith("| rank | method | kind | scenario | PSR@1 worst [95% CI] |") and "| pgd† | per-image | probe |" in md
    assert "† pgd: config changed from its registered defaults: steps=2." in md  # tiny_suite shortens PGD


def test_publish_writes_one_json_per_entry_with_numbers_as_numbers(finished_run, tmp_path):
    run_dir = finished_run[0]
    written = publish.publish(run_dir, tmp_path / "results")
    entries = sorted((tmp_path / "results" / "entries").glob("*.json"))
    assert [p.name for p in entries] == ["pgd--gallery.json", "pgd--probe.json"]
    entry = json.loads(entries[1].read_text())
    assert isinstance(entry["psr"]["sface"]["none"]["top1"], float) and isinstance(entry["ssim"], float)
    assert entry["seeds"] == [0] and entry["run"]["environment"]["git_revision"]
    # the fixture's run was interrupted once and resumed (other tests may resume it again): all are on record
    invocations = entry["run"]["invocations"]
    assert len(invocations) >= 2 and all(i["git_revision"] and i["created"] for i in invocations)
    assert (tmp_path / "results" / "leaderboard.md") in written
    # the report of the published folder has the run's example crops, and nothing names this machine's folders
    assert (tmp_path / "results" / "examples" / "pgd.npz") in written
    assert (tmp_path / "results" / "schema" / "entry-v1.json") in written
    for path in (tmp_path / "results").rglob("*"):
        if path.suffix in (".json", ".csv", ".md"):
            assert str(run_dir) not in path.read_text() and str(Path.home()) not in path.read_text(), path
    assert json.loads((tmp_path / "results" / "leaderboard.json").read_text())["run"]["source"] == run_dir.name
    # a board of many methods may publish fewer crops than the run wrote, or none
    publish.publish(run_dir, tmp_path / "one", examples=1)
    with np.load(tmp_path / "one" / "examples" / "pgd.npz") as crops, np.load(run_dir / "examples" / "pgd.npz") as run:
        assert len(run["protected"]) > 1 and len(crops["protected"]) == len(crops["clean"]) == 1
        assert (crops["protected"][0] == run["protected"][0]).all()
    publish.publish(run_dir, tmp_path / "none", examples=0)
    assert not (tmp_path / "none" / "examples").exists() and (tmp_path / "none" / "leaderboard.json").is_file()


def test_publish_merges_runs_of_one_protocol_and_refuses_others(finished_run, tmp_path):
    run_dir = finished_run[0]
    uap_suite = tiny_suite().with_overrides(methods=("uap",), method_overrides={"uap": {"iterations": 2}})
    uap_dir = tmp_path / "uap-run"
    Runner(uap_suite, uap_dir, data_root=str(embedded_data_root())).run()
    publish.publish([run_dir, uap_dir], tmp_path / "results")
    names = sorted(p.name for p in (tmp_path / "results" / "entries").glob("*.json"))
    assert names == ["pgd--gallery.json", "pgd--probe.json", "uap--gallery.json", "uap--probe.json"]
    uap = json.loads((tmp_path / "results" / "entries" / "uap--probe.json").read_text())
    assert uap["run"]["source"] == uap_dir.name and uap["kind"] == "universal"
    users = json.loads((tmp_path / "results" / "leaderboard.json").read_text())["run"]["users"]
    assert sorted(uap["protector_info"]) == sorted(users)  # what each user's fit recorded
    md = (tmp_path / "results" / "leaderboard.md").read_text()
    assert "| pgd† | per-image | probe |" in md and "| uap† | universal | probe |" in md

    # A board grown run by run: the published folder, read back, merges with the next run (its folder may be
    # long gone), each entry keeping the facts of the run that measured it.
    publish.publish([run_dir], tmp_path / "grown")
    publish.publish([tmp_path / "grown", uap_dir], tmp_path / "grown")
    grown = json.loads((tmp_path / "grown" / "leaderboard.json").read_text())
    assert {e["method"]: e["run"]["source"] for e in grown["entries"]} == {"pgd": run_dir.name, "uap": uap_dir.name}
    assert grown["run"]["source"] == [run_dir.name, uap_dir.name]
    with pytest.raises(ValueError, match="in both"):
        publish.publish([tmp_path / "grown", uap_dir], tmp_path / "grown")  # a method measured again is named
    # a part stopped before a method's end (its entries incomplete) gives way to the run that measured it whole
    whole = leaderboard.build_runs([uap_dir])
    stopped = {**whole, "run": {**whole["run"], "source": "stopped"},
               "entries": [{**e, "status": "incomplete"} for e in whole["entries"]]}
    for order in ([stopped, whole], [whole, stopped]):
        merged = board_merge.merge(order)
        assert {(e["status"], e["run"]["source"]) for e in merged["entries"]} == {("ok", str(uap_dir))}
    with pytest.raises(ValueError, match="in both"):
        board_merge.merge([stopped, stopped])

    with pytest.raises(ValueError, match="in both"):
        leaderboard.build_runs([run_dir, run_dir])
    boards = [leaderboard.build_runs([run_dir]), leaderboard.build_runs([uap_dir])]
    boards[1]["run"]["users"] = boards[1]["run"]["users"][:1]
    with pytest.raises(ValueError, match="differ in users"):
        board_merge.merge(boards)


def test_opom_pairs_protocol_reuses_the_protected_photos_and_is_stated(finished_run, tmp_path):
    """Switching a run to OPOM's protocol re-scores it without protecting again; the rows say which protocol
    made them, and runs of different protocols do not merge."""
    run_dir = tmp_path / "pairs"
    shutil.copytree(finished_run[0], run_dir)
    counter = CountTasks()
    Runner(tiny_suite().with_overrides(protocol="opom-pairs"), run_dir, data_root=str(embedded_data_root()),
           reporter=counter).run()
    assert counter.executed and all(label.startswith("eval/") for label in counter.executed), counter.executed
    board = leaderboard.build_runs([run_dir])
    probe = next(e for e in board["entries"] if e["scenario"] == "probe")
    assert probe["protocol"] == "opom-pairs" and "top10" in probe["psr"]["sface"]["none"]
    assert probe["reference"] and isinstance(probe["reported"], list)
    assert "opom-pairs: OPOM's protocol" in tables.to_markdown(board)
    assert tables.flat_frame(board)["protocol"].tolist()[0] == "opom-pairs"
    with pytest.raises(ValueError, match="differ in protocol"):
        board_merge.merge([leaderboard.build_runs([finished_run[0]]), board])


def test_a_target_running_a_surrogates_weights_counts_as_white_box():
    from bench.registry import TARGETS
    from bench.run.runner import surrogate_twins

    sface, sface_cv2, dlib_resnet = (TARGETS.create(n) for n in ("sface", "sface-cv2", "dlib-resnet"))
    assert surrogate_twins(sface_cv2, [sface, dlib_resnet]) == ["sface"]
    assert surrogate_twins(sface, [sface, dlib_resnet]) == []  # a surrogate itself is white-box by name
    assert surrogate_twins(dlib_resnet, [sface]) == []
    board = {"target_info": {"sface": {"white_box": True}, "sface-cv2": {"white_box": True, "same_weights_as": ["sface"]},
                             "faceres": {"white_box": False}}}
    assert tables.white_box_text(board) == "sface, sface-cv2 (sface's weights)"


@dataclasses.dataclass
class ToyConfig:
    declared_dssim: float = 0.001
    amplitude: float = 8 / 255


@pytest.fixture
def over_budget_method():
    from bench.registry import METHODS
    from methods.base import Budget, Method, Protector

    class Noise(Protector):
        def __init__(self, amplitude):
            self.amplitude = amplitude

        def protect(self, canvases):
            gen = torch.Generator(device=canvases.device).manual_seed(0)
            return (canvases + self.amplitude * torch.randn(canvases.shape, generator=gen)).clamp(0, 1)

    class Toy(Method):
        """A deliberately dishonest method, registered by this test only: it declares a DSSIM bound and adds
        noise well beyond it."""

        kind = "per-image"
        Config = ToyConfig

        def budget(self):
            return Budget(linf=1.0, dssim=self.config.declared_dssim)

        def fit(self, photos, surrogates, seed):
            return Noise(self.config.amplitude)

    METHODS.register("test-over-budget")(Toy)
    yield "test-over-budget"
    METHODS._entries.pop("test-over-budget")


def test_a_method_over_its_declared_budget_fails_its_tasks(over_budget_method, tmp_path):
    suite = tiny_suite().with_overrides(methods=(over_budget_method,), method_overrides={},
                                        adversaries=("jpeg-75",))
    counter = CountTasks()
    plan = Runner(suite, tmp_path, data_root=str(embedded_data_root()), reporter=counter).run()
    store = RunStore.open_existing(tmp_path)
    protect = [store.task(k) for k in plan["methods"][over_budget_method]["protect"]["0"].values()]
    assert all(t["status"] == "failed" for t in protect)
    assert all("exceeded its dssim budget" in t["error"] and "probe photo" in t["error"] for t in protect)
    evals = [store.task(k) for k in plan["methods"][over_budget_method]["eval"]["0"]["jpeg-75"].values()]
    assert all(t["status"] == "failed" and t["error"].startswith("skipped") for t in evals)
    assert store.is_done(plan["clean_eval"]["sface"])  # the clean baseline does not need an adversary named "none"


def test_key_holder_accuracy_is_its_own_task(finished_run, tmp_path):
    """A universal mask is a key: its authorized accuracy is measured once per method and target."""
    uap_suite = tiny_suite().with_overrides(methods=("uap",), method_overrides={"uap": {"iterations": 2}},
                                            adversaries=("jpeg-75",))
    plan = Runner(uap_suite, tmp_path, data_root=str(embedded_data_root())).run()
    store = RunStore.open_existing(tmp_path)
    key = plan["methods"]["uap"]["authorized"]["0"]["sface"]
    assert store.task(key)["label"] == "authorized/uap/sface" and store.task(key)["status"] == "done"
    rows = store.rows([key])
    assert sorted(r["user"] for r in rows) == sorted(plan["users"])
    assert all(r["metric"] == "authorized_top1_accuracy" and 0 <= r["value"] <= 1 for r in rows)
    assert "authorized" not in plan["methods"]["uap"]["eval"]["0"]
    assert "authorized" not in finished_run[1]["methods"]["pgd"]  # per-image: no key, no task


def test_a_runs_leaderboard_ranks_with_intervals_and_compares_paired(finished_run, capsys):
    from bench.cli import main

    run_dir, _, _, _ = finished_run
    board = leaderboard.build_runs([run_dir])
    entry = next(e for e in board["entries"] if e["scenario"] == "probe")
    assert entry["rank"] == 1 and set(entry["per_user_top1"]) == {"sface|none", "sface|jpeg-75"}
    lo, hi = entry["psr_top1_worst_ci"]
    assert lo <= entry["psr_top1_worst"] <= hi
    assert "psr_top1[sface|none]_ci_low" in tables.to_csv(board).splitlines()[0]
    assert main(["compare", str(run_dir), "pgd", "pgd", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["users"] == 2 and result["worst"]["difference"] == 0 and not result["worst"]["significant"]


def test_linkage_and_dynamic_gallery_reuse_the_protected_photos_and_reach_every_export(finished_run, tmp_path):
    """Adding the linkage scenarios and the dynamic gallery re-scores the run without protecting again; the
    linkage entries carry the clean photos' PSR-linkage as their baseline in the JSON, CSV, Markdown and HTML."""
    from bench.report.html import render_html

    run_dir = tmp_path / "linkage"
    shutil.copytree(finished_run[0], run_dir)
    counter = CountTasks()
    suite = tiny_suite().with_overrides(scenarios=("probe", "gallery", "linkage", "linkage-anchored"),
                                        adversaries=("none", "jpeg-75", "dynamic-gallery"))
    Runner(suite, run_dir, data_root=str(embedded_data_root()), reporter=counter).run()
    assert counter.executed and all(label.startswith("eval/") for label in counter.executed), counter.executed
    board = leaderboard.build_runs([run_dir])
    by_scenario = {e["scenario"]: e for e in board["entries"]}
    assert set(by_scenario) == {"probe", "gallery", "linkage", "linkage-anchored"}
    for scenario in ("linkage", "linkage-anchored"):
        entry = by_scenario[scenario]
        assert 0 <= entry["psr"]["sface"]["none"]["top1"] <= 1 and "top1_ci" in entry["psr"]["sface"]["none"]
        # a tracker that groups photos by user presumes the linkage: it is not scored there
        assert "top1" not in entry["psr"]["sface"].get("dynamic-gallery", {})
        assert entry["clean_psr_top1"]["sface"] == pytest.approx(1 - board["clean"]["sface"][f"{scenario}_top1_rate"])
    # clean photos of two people link to their owner, and the probe accuracy still counts probe rows only
    assert board["clean"]["sface"]["linkage_top1_rate"] >= 0.8
    assert board["clean"]["sface"]["top1_accuracy"] == leaderboard.build_runs([finished_run[0]])["clean"]["sface"][
        "top1_accuracy"]
    probe = by_scenario["probe"]
    assert probe["adversary_kinds"]["dynamic-gallery"] == "estimation"
    assert probe["psr_top1_worst_adaptive"] == probe["psr"]["sface"]["dynamic-gallery"]["top1"]
    assert "top1" in by_scenario["gallery"]["psr"]["sface"]["dynamic-gallery"]
    frame = tables.flat_frame(board)
    assert frame.loc[frame["scenario"] == "linkage", "clean_psr_top1[sface]"].notna().all()
    markdown = tables.to_markdown(board)
    assert "| linkage |" in markdown and "Clean photos, linkage rate" in markdown
    assert "linkage rate</th>" in render_html(board)


class StatusAtEachStep(Reporter):
    """Asks `bench status` where the run stands at each step a plug-in reports inside a task."""

    def __init__(self, run_dir):
        self.run_dir, self.seen = run_dir, []

    def step(self, label, done, total):
        from bench.commands.status import show
        from bench.run.status import run_status

        out = io.StringIO()
        status = run_status(self.run_dir)
        show(status, Console(file=out, width=300))
        self.seen.append(((label, done, total), status.computing, out.getvalue()))


def test_status_shows_how_far_the_task_under_way_has_gone(tmp_path):
    run_dir = tmp_path / "run"
    reporter = StatusAtEachStep(run_dir)
    Runner(tiny_suite(), run_dir, data_root=str(embedded_data_root()), reporter=reporter).run()
    # PGD reports its protect loop: 0, each step, the last; the store keeps the first and the last of a loop
    # (and one at most every STEP_EVERY seconds between), so status sees them as they happen
    firsts = [(step, computing, text) for step, computing, text in reporter.seen if step[1] in (0, step[2])]
    assert firsts and all(step[0] == "pgd protect" for step, _, _ in reporter.seen)
    for (label, done, total), computing, text in firsts:
        (task, seconds, seen), = computing  # one task under way: the user's protect task
        assert task.startswith("protect/pgd/") and seconds >= 0
        assert (seen["label"], seen["done"], seen["total"]) == (label, done, total) and seen["seconds_ago"] >= 0
        assert f"computing {task} for " in text and f", at {label} {done}/{total} (" in text
        assert "methods: 0 protected every user, 1 under way (pgd " in text  # from its first user's task on
    store = RunStore.open_existing(run_dir)
    try:
        assert store.steps() == {}  # a finished task's step is gone with it
    finally:
        store.close()


def test_status_says_what_is_done_failed_and_left_while_running_and_after(tmp_path, capsys):
    from bench.cli import main
    from bench.run.folder_lock import run_lock
    from bench.run.status import run_status

    run_dir = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        Runner(tiny_suite(), run_dir, data_root=str(embedded_data_root()), reporter=InterruptAfter(3)).run()
    stopped = run_status(run_dir)
    # clean/sface + 2 protect + 2 evaluations + 1 clean evaluation, 3 of them recorded before the stop
    assert stopped.holder is None and stopped.planned and stopped.suite == "smoke"
    assert (stopped.total("done"), stopped.total("failed"), stopped.total("to_go")) == (3, 0, 3)
    assert stopped.seconds_left is not None and stopped.seconds_left > 0 and not stopped.priced
    assert main(["status", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "not running" in out and "3 done, 0 failed, 3 to go" in out and "time left" in out
    # the first three tasks are clean/sface and the two users' PGD
    assert stopped.methods == {"pgd": [2, 2]} and "methods: 1 protected every user, 0 under way" in out

    with run_lock(run_dir):  # a run holds the folder: status names it
        running = run_status(run_dir)
        # an hour into a task that runs long: the pace is that of the tasks done, so the time left shrinks (to what
        # follows the task under way), never grows with the wait
        waited = run_status(run_dir, now=time.time() + 3600)
    assert running.holder and f"pid {os.getpid()}" in running.holder
    assert 0 < waited.seconds_left <= stopped.seconds_left

    Runner(tiny_suite(), run_dir, data_root=str(embedded_data_root()), reporter=CountTasks()).run()
    finished = run_status(run_dir)
    assert (finished.total("done"), finished.total("to_go"), finished.seconds_left) == (6, 0, 0.0)
    assert list(finished.kinds) == ["clean", "protect", "eval"]

    store = RunStore.open_existing(run_dir)  # a folder from before runs recorded their plan
    with store.db:
        store.db.execute("DELETE FROM meta WHERE key = 'planned'")
    store.close()
    assert main(["status", str(run_dir), "--json"]) == 0
    old = json.loads(capsys.readouterr().out)[0]
    assert old["planned"] is False and old["done"] == 6 and old["to_go"] == 0
    assert main(["status", str(run_dir), str(run_dir)]) == 0  # the parts of a split run, summed
    assert "all 2 folders: 12 done, 0 failed, 0 to go" in capsys.readouterr().out
    assert main(["status", str(tmp_path / "nothing")]) == 2
    assert "not a run folder" in capsys.readouterr().err
