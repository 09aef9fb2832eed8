"""The leaderboard's robustness fields, from adversary kinds and unseen targets (pure bookkeeping)."""

from __future__ import annotations

from bench.report.threat_profile import adaptation_seconds, robustness_fields


def test_worst_cases_by_kind_and_by_unseen_target():
    psr = {
        "sface": {"none": {"top1": 0.9}, "jpeg-75": {"top1": 0.7}, "mask-estimation": {"top1": 0.4},
                  "purification": {"status": "failed"}},
        "mobileface": {"none": {"top1": 0.6}, "jpeg-75": {"top1": 0.5}, "mask-estimation": {"top1": 0.55},
                       "purification": {"top1": 0.3}},
    }
    kinds = {"none": "transform", "jpeg-75": "transform", "mask-estimation": "estimation",
             "purification": "adaptation"}
    fields = robustness_fields(psr, kinds, ["mobileface"], "top1")
    assert fields["psr_top1_no_adversary"] == 0.6
    assert fields["psr_top1_worst_adaptive"] == 0.3
    assert fields["psr_top1_worst_unseen"] == 0.3
    assert fields["psr_top1_by_adversary"] == {"none": 0.6, "jpeg-75": 0.5, "mask-estimation": 0.4,
                                               "purification": 0.3}
    only_transforms = robustness_fields(psr, {"none": "transform", "jpeg-75": "transform"}, [], "top1")
    assert only_transforms["psr_top1_worst_adaptive"] is None and only_transforms["psr_top1_worst_unseen"] is None


def test_adaptation_seconds_per_cell():
    import pandas as pd

    rows = {("purification", "sface"): pd.DataFrame([{"metric": "psr_top1", "value": 0.2},
                                                     {"metric": "adapt_s", "value": 42.0}]),
            ("none", "sface"): pd.DataFrame([{"metric": "psr_top1", "value": 0.9}]), ("purification", "dlib"): None}
    assert adaptation_seconds(rows) == {"sface|purification": 42.0}
