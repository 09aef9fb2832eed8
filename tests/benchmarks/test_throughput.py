"""Throughput gates, timed with pytest-benchmark (`pytest -m slow tests/benchmarks --benchmark-enable` prints its
table): the harness adds little to the networks it drives (eval_ratio, fit_ratio), a run computes nothing twice,
scales linearly in users and beats a naive per-image loop. Ratios, timed in turns, so a shared machine's load
falls on both sides (bench/perf/throughput/throughput.py)."""

from __future__ import annotations

import pytest

from bench.core.paths import embedded_data_root
from bench.perf.run_measures import suite_measures
from bench.perf.throughput import faces, method_cost, shortened, target_rates
from bench.registry import METHODS, TARGETS
from bench.run.suites import get_suite

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def team():
    targets = [TARGETS.create(name, device="cpu") for name in ("sface", "dlib-resnet")]
    for t in targets:
        t.load()
    photos = faces(str(embedded_data_root()), 8, "cpu")
    return targets, photos[:4], photos[4:]


def test_harness_embedding_runs_at_the_raw_network_rate(benchmark, team):
    targets, fit_photos, _ = team
    for target in targets:
        rates = target_rates(target, fit_photos, repeat=3)
        assert rates.eval_ratio >= 0.9, f"{target.name}: harness {rates.forward_ips:.1f} img/s, raw network " \
                                        f"{rates.raw_forward_ips:.1f}"
    benchmark(targets[0].embed, fit_photos)


def test_chameleon_fit_runs_at_its_surrogates_rate(benchmark, team):
    targets, fit_photos, probes = team
    rates = {t.name: target_rates(t, fit_photos, repeat=3) for t in targets}
    chameleon = METHODS.create("chameleon", epochs=3)
    cost = method_cost(chameleon, targets, fit_photos, probes, rates)
    assert cost.fit_ratio >= 0.85, f"fit_ratio {cost.fit_ratio:.2f}: {cost.fit_s:.1f} s for {cost.passes}"
    benchmark.pedantic(chameleon.fit, args=(fit_photos, targets, 0), rounds=1, iterations=1)


def test_a_run_recomputes_nothing_scales_linearly_and_beats_the_naive_loop(tmp_path):
    suite = shortened(get_suite("smoke").with_overrides(gallery_identities=6), effort=2)
    measures = suite_measures(suite, tmp_path, str(embedded_data_root()), "cpu", 1, users=2)
    assert measures["recomputations"] == 0
    assert measures["tasks_scaling_2x"] <= 2.1 and measures["scaling_2x"] <= 2.1
    assert measures["speedup_vs_naive"] > 1
