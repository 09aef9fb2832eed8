"""Work counters (recomputations), devices, effort knobs and cost estimates: the harness side of `bench perf`
and `bench run --dry-run`, on real faces (embedded LFW subset, SFace, PGD)."""

from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path

import pytest
import torch

import attacks
import bench
import methods
from bench.core import devices
from bench.core.paths import bench_home, embedded_data_root
from bench.core.progress import Reporter
from bench.core.work_log import WorkLog
from bench.measures.registry import METRICS
from bench.perf.estimate import Estimator, cached_prices, measured_kinds, task_kind
from bench.perf.rates import Linear, RateCache
from bench.registry import METHODS, TARGETS
from bench.run.prepare import describe_files
from bench.run.provenance import code_version, content_key
from bench.run.runner import Runner
from bench.run.store import RunStore
from bench.run.suites import get_suite


def tiny_suite(**changes):
    base = dict(users=2, gallery_identities=6, method_overrides={"pgd": {"steps": 1}}, adversaries=("none", "jpeg-75"))
    return get_suite("smoke").with_overrides(**{**base, **changes})


def test_work_log_counts_items_done_again():
    log = WorkLog()
    log.note("aligned", "mtcnn", ["a", "b"])
    log.note("clean-embedded", "sface", ["a", "b", "c"])
    log.note("clean-embedded", "dlib-resnet", ["a"])  # another model: not a recomputation
    assert log.summary()["recomputations"] == 0
    log.note("clean-embedded", "sface", ["b"])
    other = WorkLog()
    other.note("aligned", "mtcnn", ["a"])
    log.merge(other.as_dict())  # what a remote task returns
    summary = log.summary()
    assert summary["aligned"] == {"items": 2, "times": 3, "again": 1}
    assert summary["clean-embedded"] == {"items": 4, "times": 5, "again": 1}
    assert summary["recomputations"] == 2
    with pytest.raises(ValueError, match="unknown kind"):
        log.note("fitted", "x", ["a"])


@pytest.fixture()
def fresh_home(tmp_path, monkeypatch):
    """A BENCH_HOME with the real weights and calibrations but an empty alignment cache."""
    home = tmp_path / "home"
    home.mkdir()
    real = bench_home()
    for part in ("weights", "calibration"):
        if (real / part).exists():
            (home / part).symlink_to(real / part)
    monkeypatch.setenv("BENCH_HOME", str(home))
    return home


def test_a_run_aligns_and_embeds_every_clean_photo_once(fresh_home, tmp_path):
    runner = Runner(tiny_suite(), tmp_path / "run", data_root=str(embedded_data_root()), device="auto")
    plan = runner.run()
    store = RunStore.open_existing(tmp_path / "run")
    work = store.get_meta("work")
    clean = store.load_artifact(plan["targets"]["sface"]["clean_key"])
    embedded = sum(len(v) for v in clean.values())  # the gallery and every user's probes
    assert work["recomputations"] == 0
    # every photo the run uses was detected once: each user's gallery, probes and fit photos, the others' gallery
    assert work["aligned"]["items"] > 0 and work["aligned"]["again"] == 0
    # the clean task embedded each gallery and probe photo once; no evaluation embedded a clean photo again
    assert work["clean-embedded"] == {"items": embedded, "times": embedded, "again": 0}
    assert plan["device"] == devices.resolve_device("auto") == store.get_meta("environment")["device"]
    # a rerun resumes: nothing is aligned (cache) or embedded again
    again = Runner(tiny_suite(), tmp_path / "run", data_root=str(embedded_data_root()))
    again.run()
    assert again.work.summary()["recomputations"] == 0 and again.work.summary()["aligned"]["times"] == 0


def test_auto_device_takes_cuda_only_when_present(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert devices.resolve_device("auto") == devices.resolve_device(None) == "cpu"
    with pytest.raises(ValueError, match="CUDA is not available"):
        devices.resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert devices.resolve_device("auto") == "cuda"
    with pytest.raises(ValueError, match="not a torch device"):
        devices.resolve_device("gpu0")


def test_default_threads_stay_within_the_cores_this_process_may_use():
    assert 1 <= devices.default_threads() <= devices.available_cores()
    assert devices.default_threads() <= torch.get_num_threads() or torch.get_num_threads() < 1


@pytest.mark.parametrize("name", METHODS.names())
def test_effort_knob_names_an_integer_setting(name):
    method = METHODS.create(name)
    if method.effort is None:
        return
    value = getattr(method.config, method.effort)
    assert isinstance(value, int) and value >= 1, f"{name}.{method.effort} = {value!r}"
    shortened = METHODS.create(name, **{method.effort: 1})
    assert getattr(shortened.config, method.effort) == 1


def test_linear_cost_scales_with_effort_and_photos():
    cost = Linear(a=1.0, b=0.5, batch=4)
    assert cost.seconds(photos=4, effort=2) == pytest.approx(2.0)
    assert cost.seconds(photos=8, effort=10) == pytest.approx(12.0)
    assert Linear(a=-5.0, b=0.0, batch=4).seconds(4, 1) == 0.0  # never negative


def prefill(cache: RateCache, planned) -> None:
    """Rates put in by hand (so nothing is measured): sface 10 img/s, PGD 0.4 s + 0.2 s per step for 4 photos,
    quality 0.1 s per photo, each adversary 0.01 s per photo."""
    pgd = planned.methods["pgd"]
    cache.put(f"target/sface/{code_version(TARGETS.entry('sface').cls)}", {"forward_ips": 10.0})
    cache.put("method/pgd/" + content_key(dataclasses.asdict(pgd.config), code_version(pgd), ["sface"], 4),
              {"fit": {"a": 0.0, "b": 0.0, "batch": 4}, "protect": {"a": 0.4, "b": 0.2, "batch": 4}})
    cache.put("quality/" + content_key(sorted(m.row for m in METRICS.quality()), 4), {"seconds_per_photo": 0.1})
    for name, adversary in planned.adversaries.items():
        cache.put(f"adversary/{name}/" + content_key(dataclasses.asdict(adversary.config), code_version(adversary)),
                  {"seconds_per_photo": 0.01})


def expected_seconds(suite) -> dict[str, float]:
    info = describe_files(suite, embedded_data_root())
    n_probe = sum(len(v) for v in info.probe.values())
    # PGD at 1 step: (0.4 + 0.2 * 1) s per 4 photos, plus 0.1 s of quality per probe
    return {"clean": (len(info.gallery) + n_probe) / 10.0, "protect": n_probe * (0.6 / 4 + 0.1),
            "eval": 2 * n_probe * (1 / 10.0 + 0.01), "eval-clean": 0.0}


def test_dry_run_prices_the_plan_from_cached_rates(tmp_path):
    suite = tiny_suite()
    cache = RateCache("cpu", 1, path=tmp_path / "rates.json")
    estimator = Estimator(suite, embedded_data_root(), "cpu", 1, Reporter(), cache=cache)
    planned = estimator.plan()
    kinds = [task_kind(t.label) for t in planned.graph.tasks]
    # clean/sface, protect x 2 users, eval x 2 adversaries, eval/clean/sface
    assert sorted(kinds) == ["clean", "eval", "eval", "eval-clean", "protect", "protect"]
    prefill(cache, planned)
    estimate = estimator.estimate()
    assert {k: c.seconds for k, c in estimate.kinds.items()} == pytest.approx(expected_seconds(suite))
    assert estimate.methods["pgd"]["users"] == 2 and estimate.notes == []


def test_remeasure_measures_each_rate_again_once_per_run(tmp_path):
    path = tmp_path / "rates.json"
    RateCache("cpu", 1, path=path).put("target/sface", {"forward_ips": 10.0})
    cache = RateCache("cpu", 1, path=path, remeasure=True)
    assert cache.get("target/sface") is None  # the stored rate is not read back
    cache.put("target/sface", {"forward_ips": 12.0})
    # every later task asking for it in this run reads the new rate instead of timing it again
    assert cache.get("target/sface")["forward_ips"] == 12.0
    assert RateCache("cpu", 1, path=path).get("target/sface")["forward_ips"] == 12.0


def test_bench_run_dry_run_prints_tasks_and_time_per_kind(fresh_home, capsys):
    from bench.cli import main

    suite = tiny_suite()
    prefill(RateCache("cpu", 1), Estimator(suite, embedded_data_root(), "cpu", 1, Reporter()).plan())
    args = ["run", "--suite", "smoke", "--users", "2", "--gallery-identities", "6", "--set", "pgd.steps=1",
            "--data-root", str(embedded_data_root()), "--device", "cpu", "--threads", "1", "--dry-run", "--json"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert {k: v["tasks"] for k, v in out["kinds"].items()} == {"clean": 1, "protect": 2, "eval": 2, "eval-clean": 1}
    assert {k: v["seconds"] for k, v in out["kinds"].items()} == pytest.approx(expected_seconds(suite))
    assert out["device"] == "cpu" and out["rates"].startswith(str(fresh_home))


class ExpectedCosts(Reporter):
    def __init__(self):
        self.costs, self.messages = None, []

    def expect(self, costs):
        self.costs = dict(costs)

    def message(self, text):
        self.messages.append(text)


def test_a_run_weighs_its_tasks_for_the_eta_by_the_dry_runs_prices(fresh_home, tmp_path):
    suite = tiny_suite()
    root = str(embedded_data_root())
    # no dry run on this machine yet: nothing is measured, every task counts alike
    unpriced = ExpectedCosts()
    Runner(suite, tmp_path / "a", data_root=root, device="cpu", threads=1, reporter=unpriced,
           pricer=cached_prices).run()
    assert unpriced.costs == {} and any("counted alike" in m for m in unpriced.messages)

    estimator = Estimator(suite, embedded_data_root(), "cpu", 1, Reporter())
    prefill(estimator.cache, estimator.plan())
    priced = ExpectedCosts()
    Runner(suite, tmp_path / "b", data_root=root, device="cpu", threads=1, reporter=priced, pricer=cached_prices).run()
    assert priced.costs == pytest.approx(estimator.estimate().tasks)  # every task, at the dry run's price
    protect = [c for label, c in priced.costs.items() if label.startswith("protect/")]
    assert len(protect) == 2 and min(protect) > priced.costs["eval/clean/sface"]
    resumed = ExpectedCosts()
    Runner(suite, tmp_path / "b", data_root=root, device="cpu", threads=1, reporter=resumed, pricer=cached_prices).run()
    assert resumed.costs == {}  # nothing left to run
    planned = RunStore.open_existing(tmp_path / "b").get_meta("planned")
    assert planned["prices"] == {} and len(planned["tasks"]) == len(priced.costs)  # what `bench status` reads
    assert any(m == "ETA: each task weighed by its dry-run price" for m in priced.messages)

    # PGD's code changes after the dry run: its rate is keyed to the old code, and the ETA keeps it, saying so
    rates = json.loads(estimator.cache.path.read_text())
    machine = rates[estimator.cache.machine]
    old = next(k for k in machine if k.startswith("method/pgd/"))
    machine["method/pgd/an-earlier-version"] = machine.pop(old)
    estimator.cache.path.write_text(json.dumps(rates))
    changed = ExpectedCosts()
    Runner(suite, tmp_path / "c", data_root=root, device="cpu", threads=1, reporter=changed, pricer=cached_prices).run()
    assert changed.costs == pytest.approx(priced.costs)
    assert any("the rates of method/pgd are from before a change to their code or settings" in m for m in changed.messages)
    # a plug-in never measured still leaves every task counted alike
    del machine["method/pgd/an-earlier-version"]
    estimator.cache.path.write_text(json.dumps(rates))
    unmeasured = ExpectedCosts()
    Runner(suite, tmp_path / "d", data_root=root, device="cpu", threads=1, reporter=unmeasured,
           pricer=cached_prices).run()
    assert unmeasured.costs == {} and any("counted alike" in m for m in unmeasured.messages)


@pytest.mark.slow
def test_the_estimate_is_within_a_factor_of_two_of_the_run(tmp_path):
    suite = tiny_suite(method_overrides={"pgd": {"steps": 5}})
    cache = RateCache("cpu", 1, path=tmp_path / "rates.json")
    estimate = Estimator(suite, embedded_data_root(), "cpu", 1, Reporter(), cache=cache).estimate()
    Runner(suite, tmp_path / "run", data_root=str(embedded_data_root()), device="cpu", threads=1).run()
    actual = measured_kinds(RunStore.open_existing(tmp_path / "run"))
    assert {k: c.tasks for k, c in actual.items()} == {k: c.tasks for k, c in estimate.kinds.items()}
    total = sum(c.seconds for c in actual.values())
    assert 0.5 <= estimate.seconds / total <= 2, (estimate.kinds, actual)
    assert 0.5 <= estimate.kinds["protect"].seconds / actual["protect"].seconds <= 2


HOT_MODULES = sorted({*Path(methods.__file__).parent.glob("*.py"), *Path(attacks.__file__).parent.glob("*.py"),
                      *(Path(bench.__file__).parent / "run" / "tasks").glob("*.py"),
                      *(Path(bench.__file__).parent / name for name in ("run/workspace.py", "run/executors.py",
                                                                       "run/ray_executor.py", "measures/psr.py",
                                                                       "measures/quality.py"))})


@pytest.mark.parametrize("path", HOT_MODULES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_hard_coded_cpu_and_no_host_copy_inside_a_loop(path):
    """Tensors stay on the run's device: no "cpu" literal, and no ``.cpu()``/``.numpy()`` in a loop body of
    the methods, adversaries and task bodies (a host copy per step stalls a GPU)."""
    tree = ast.parse(path.read_text())
    literals = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value == "cpu"]
    assert not literals, f"{path.name}: hard-coded 'cpu' at lines {literals}"
    copies = sorted({n.lineno for loop in ast.walk(tree) if isinstance(loop, (ast.For, ast.While))
                     for stmt in loop.body for n in ast.walk(stmt)
                     if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
                     and n.func.attr in ("cpu", "numpy", "tolist")})
    assert not copies, f"{path.name}: host copies inside a loop at lines {copies}"


def test_dry_run_prices_photo_space_from_a_real_detection(tmp_path):
    """Photo space adds posting and the attacker's detection, measured on real photos of the data root (JPEG,
    YuNet): posting per protected probe (photos tasks), detection once per method's posted photos and once for
    the clean probes, where the run does them."""
    suite = tiny_suite(space="photo")
    cache = RateCache("cpu", 1, path=tmp_path / "rates.json")
    estimator = Estimator(suite, embedded_data_root(), "cpu", 1, Reporter(), cache=cache)
    planned = estimator.plan()
    assert sorted(task_kind(t.label) for t in planned.graph.tasks).count("photos") == 2
    prefill(cache, planned)
    estimate = estimator.estimate()
    price = estimator.photo_seconds("yunet")  # measured now, then cached
    assert price["post_s"] > 0 and price["quality_s"] > 0 and price["detect_s"] > 0
    assert cache.get(next(k for k in cache.entries if k.startswith("photo/yunet/90/"))) == price
    n_probe = sum(len(v) for v in describe_files(suite, embedded_data_root()).probe.values())
    crop = expected_seconds(suite)
    assert estimate.kinds["photos"].seconds == pytest.approx(n_probe * (price["post_s"] + price["quality_s"]))
    # one method (pgd): its posted photos found once, in its first evaluation; the clean ones posted, found and
    # embedded by the one target (sface, 10 img/s)
    assert estimate.kinds["eval"].seconds == pytest.approx(crop["eval"] + n_probe * price["detect_s"])
    assert estimate.kinds["eval-clean"].seconds == pytest.approx(
        crop["eval-clean"] + n_probe * (price["post_s"] + price["detect_s"] + 1 / 10.0))
    assert estimate.kinds["protect"].seconds == pytest.approx(crop["protect"])


def test_dry_run_notes_a_method_that_fails_when_timed_and_prices_the_rest(tmp_path, monkeypatch):
    # e.g. OPOM's DFANet variants on a surrogate a user brings without 3 x 3 convolutions: the run records their
    # tasks as failed, so the dry run says so instead of stopping
    suite = tiny_suite()
    cache = RateCache("cpu", 1, path=tmp_path / "rates.json")
    estimator = Estimator(suite, embedded_data_root(), "cpu", 1, Reporter(), cache=cache)
    planned = estimator.plan()
    prefill(cache, planned)
    pgd = planned.methods["pgd"]
    del cache.entries["method/pgd/" + content_key(dataclasses.asdict(pgd.config), code_version(pgd), ["sface"], 4)]
    calls = []

    def fails(*args, **kwargs):
        calls.append(args)
        raise ValueError("sface has no Conv2d of kernel (3, 3)")

    monkeypatch.setattr("bench.perf.machine_rates.time_method", fails)
    estimate = estimator.estimate()
    assert len(calls) == 1  # timed once, not once per user
    assert estimate.kinds["protect"].tasks == 2 and estimate.kinds["protect"].seconds == 0.0
    assert "pgd" not in estimate.methods
    assert [n for n in estimate.notes if n.startswith("pgd fails") and "no Conv2d of kernel (3, 3)" in n]
    expected = expected_seconds(suite)
    assert {k: c.seconds for k, c in estimate.kinds.items() if k != "protect"} == pytest.approx(
        {k: v for k, v in expected.items() if k != "protect"})


def test_dry_run_prices_the_training_adversaries(tmp_path):
    """Purification and robust fine-tuning: the owner's people protected once per method (shared by both), each
    one's training timed here (seconds per step x the steps its config takes, once per method and target: a
    purifier in the target's feature space, a fine-tuned copy of the target), and the adapted recogniser re-embedding the gallery and probes."""
    settings = {"purification": {"identities": 3, "photos": 2, "steps": 7, "batch": 1, "width": 8},
                "robust-finetune": {"identities": 3, "photos": 2, "epochs": 2, "batch": 2}}
    suite = tiny_suite(adversaries=("none", "purification", "robust-finetune"), adversary_overrides=settings)
    cache = RateCache("cpu", 1, path=tmp_path / "rates.json")
    estimator = Estimator(suite, embedded_data_root(), "cpu", 1, Reporter(), cache=cache)
    planned = estimator.plan()
    prefill(cache, planned)
    estimate = estimator.estimate()
    steps = {name: next(v for k, v in cache.entries.items() if k.startswith(f"training/{name}/"))
             for name in settings}
    assert steps["purification"]["steps"] == 7 and steps["robust-finetune"]["steps"] == 2 * 3  # 6 pairs / 2
    assert all(s["seconds_per_step"] > 0 for s in steps.values())
    # PGD at 1 step protects 4 photos in 0.4 + 0.2 s: 3 people x 2 photos, once for both adversaries
    public = 3 * 2 * 0.6 / 4
    adaptation = estimate.adaptation
    assert adaptation["purification"]["protect_public_s"] + adaptation["robust-finetune"]["protect_public_s"] == \
        pytest.approx(public)
    for name, facts in adaptation.items():
        assert facts["builds"] == 1  # one method, one target
        assert facts["train_s"] == pytest.approx(steps[name]["seconds_per_step"] * steps[name]["steps"])
    info = describe_files(suite, embedded_data_root())
    n_probe = sum(len(v) for v in info.probe.values())
    reembed = 2 * (len(info.gallery) + n_probe) / 10.0  # both adapted recognisers, sface at 10 img/s
    assert estimate.kinds["eval"].seconds == pytest.approx(
        3 * n_probe * (1 / 10.0 + 0.01) + public + reembed + sum(f["train_s"] for f in adaptation.values()))
    assert not [n for n in estimate.notes if "not priced" in n]
    assert [n for n in estimate.notes if n.startswith("robust-finetune: ") and "one per method and target" in n]
