"""The Ray executor runs the same task bodies as the local one, in other processes, with the same results."""

from __future__ import annotations

import os

import pytest
import torch

from bench.core.paths import embedded_data_root
from bench.report import leaderboard
from bench.run.executors import LocalExecutor
from bench.run.runner import Runner
from bench.run.store import RunStore
from bench.run.suites import get_suite

ray = pytest.importorskip("ray", reason="the Ray executor is an optional extra: pip install 'cloakbench[ray]'")

from bench.core.devices import available_cores  # noqa: E402
from bench.core.progress import Reporter  # noqa: E402
from bench.run.ray_executor import RayExecutor  # noqa: E402


def tiny_suite():
    return get_suite("smoke").with_overrides(users=2, gallery_identities=6, method_overrides={"pgd": {"steps": 2}},
                                             adversaries=("none", "jpeg-75"))


def results(run_dir):
    store = RunStore.open_existing(run_dir)
    board = leaderboard.build(store)
    plan = store.get_meta("plan")
    keys = [k for entry in plan["methods"].values() for users in entry["protect"].values() for k in users.values()]
    artifacts = {k: store.load_artifact(k) for k in keys}
    work, tasks = store.get_meta("work"), store.db.execute("SELECT status, COUNT(*) FROM tasks GROUP BY status")
    return board, artifacts, work, dict(tasks.fetchall())


@pytest.mark.slow
def test_ray_on_two_local_workers_matches_the_local_executor(tmp_path):
    suite, data = tiny_suite(), str(embedded_data_root())
    Runner(suite, tmp_path / "local", data_root=data, device="cpu", threads=1, executor=LocalExecutor()).run()
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="warning")
    try:
        assert ray.cluster_resources()["CPU"] == 2
        Runner(suite, tmp_path / "ray", data_root=data, device="cpu", threads=1, executor=RayExecutor(suite)).run()
    finally:
        ray.shutdown()
    local, on_ray = results(tmp_path / "local"), results(tmp_path / "ray")
    assert on_ray[3] == local[3] == {"done": 6}
    assert len(RunStore.open_existing(tmp_path / "ray").attempts()) == 6  # each task noted as it was handed out
    # the workers wrote the protected photos to the shared run folder, bit for bit the local ones
    assert local[1].keys() == on_ray[1].keys()
    for key, tensors in local[1].items():
        assert all(torch.equal(tensors[name], on_ray[1][key][name]) for name in tensors)
    # the same leaderboard, timings aside
    timing = {"fit_s_per_user", "protect_ms_per_photo"}
    for a, b in zip(local[0]["entries"], on_ray[0]["entries"], strict=True):
        assert {k: v for k, v in a.items() if k not in timing} == {k: v for k, v in b.items() if k not in timing}
    # what the workers computed came back to the driver: every clean photo embedded once, nothing twice
    assert on_ray[2]["recomputations"] == 0
    assert on_ray[2]["clean-embedded"] == local[2]["clean-embedded"]


class RecordingRay:
    """Stands in for the ray module in _connect: records how Ray would be initialised."""

    def __init__(self):
        self.calls = []

    def is_initialized(self):
        return False

    def init(self, **kwargs):
        self.calls.append(kwargs)

    def cluster_resources(self):
        return {}


def test_without_an_address_a_new_local_ray_is_started_at_the_drivers_priority(monkeypatch):
    # A plain ray.init() joins the cluster whose address `ray start` left in /tmp/ray (even a stopped one) and
    # then refuses num_cpus; address="local" always starts a new instance with the cores asked for.
    fake = RecordingRay()
    monkeypatch.setattr("bench.run.ray_executor._ray", lambda: fake)
    monkeypatch.setenv("RAY_worker_niceness", "unset")
    monkeypatch.delenv("RAY_worker_niceness")
    suite = tiny_suite()
    assert RayExecutor(suite)._connect(Reporter()) is True
    # its workers run at the driver's priority, not Ray's default of 15 nicer (starved on a shared machine)
    assert os.environ["RAY_worker_niceness"] == "0"
    assert fake.calls == [{"address": "local", "num_cpus": available_cores(), "include_dashboard": False,
                           "logging_level": "warning"}]
    fake.calls.clear()
    assert RayExecutor(suite, address="auto")._connect(Reporter()) is True
    assert fake.calls == [{"address": "auto", "logging_level": "warning"}]


def test_a_worker_reads_what_it_needs_checked_against_the_recorded_sha256(tmp_path, monkeypatch):
    """A worker gets the SHA-256 the driver recorded for each artifact its task reads; a file altered since (on a
    shared file system, by anyone) is refused with its name, as the local executor's store refuses it."""
    from types import SimpleNamespace

    import numpy as np
    from PIL import Image

    from bench.run import ray_executor
    from bench.run.artifacts import ArtifactError, ArtifactReader
    from bench.run.workspace import RunCaches, TaskOutput

    photo = next((embedded_data_root() / "lfw" / "images").rglob("*.jpg"))
    face = torch.from_numpy(np.asarray(Image.open(photo).convert("RGB"))).permute(2, 0, 1)
    driver = RunStore(tmp_path)
    sha256 = driver.save_artifact("clean-key", {"face": face})
    driver.record("clean-key", "clean", "clean/x", "done", 0.0, artifact_sha256=sha256)
    hashes = {"clean-key": driver.recorded_sha256("clean-key")}
    assert hashes == {"clean-key": sha256}

    reader = ArtifactReader(tmp_path)
    workspace = SimpleNamespace(load_artifact=reader.load_artifact, caches=RunCaches())
    monkeypatch.setattr(ray_executor, "worker_workspace", lambda spec: (workspace, reader))
    monkeypatch.setitem(ray_executor.BODIES, "read", lambda ws, dep: TaskOutput(
        {"same": torch.equal(ws.load_artifact(dep)["face"], face)}, []))

    with pytest.raises(ArtifactError, match="no finished task"):  # a key the driver did not hand over
        ray_executor.run_task(None, "eval-key", "read", {"dep": "clean-key"}, {})
    output, _, _ = ray_executor.run_task(None, "eval-key", "read", {"dep": "clean-key"}, hashes)
    assert output.info["same"] is True
    path = reader.artifact_path("clean-key")
    path.write_bytes(path.read_bytes()[:-16])  # cut short
    with pytest.raises(ArtifactError, match=f"{path.name} does not match the SHA-256"):
        ray_executor.run_task(None, "eval-key", "read", {"dep": "clean-key"}, hashes)
