"""LFW calibration: fold construction, threshold search, FAR thresholds (hand-computed cases), the real pairs
file, and a real SFace calibration on a small LFW subset."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from bench.measures.calibrate import calibrate, stale_reason
from bench.measures.lfw_pairs import read_lfw_pairs
from bench.measures.verification import (
    PairSet,
    accuracy_at,
    balance_folds,
    best_threshold,
    impostor_top_scores,
    kfold_accuracy,
    threshold_at_far,
)


# -- threshold search ---------------------------------------------------------------------------------------
def test_accuracy_at_accepts_scores_equal_to_threshold():
    scores = np.array([0.1, 0.2, 0.3, 0.4])
    same = np.array([False, True, False, True])
    # accepted: 0.2, 0.3, 0.4 -> right on 0.1 (reject), 0.2, 0.4; wrong on 0.3
    assert accuracy_at(scores, same, 0.2) == 0.75
    assert accuracy_at(scores, same, 0.45) == 0.5  # rejects everything: right on the two mismatched pairs


def test_best_threshold_separable_and_overlapping():
    thr, acc = best_threshold(np.array([0.1, 0.2, 0.3, 0.4]), np.array([False, False, True, True]))
    assert thr == pytest.approx(0.25) and acc == 1.0
    # sorted: 0.1 F, 0.3 T, 0.35 F, 0.5 T. Cuts: k=0 2/4, k=1 3/4, k=2 2/4, k=3 3/4, k=4 2/4 -> first best k=1
    thr, acc = best_threshold(np.array([0.1, 0.35, 0.3, 0.5]), np.array([False, False, True, True]))
    assert thr == pytest.approx(0.2) and acc == 0.75
    assert accuracy_at(np.array([0.1, 0.35, 0.3, 0.5]), np.array([False, False, True, True]), thr) == acc


def test_best_threshold_never_cuts_between_equal_scores():
    # all three equal: only "accept all" (2/3) or "reject all" (1/3) are realisable
    thr, acc = best_threshold(np.array([0.5, 0.5, 0.5]), np.array([True, False, True]))
    assert acc == pytest.approx(2 / 3)
    assert accuracy_at(np.array([0.5, 0.5, 0.5]), np.array([True, False, True]), thr) == pytest.approx(2 / 3)
    thr, acc = best_threshold(np.array([0.5, 0.5, 0.5]), np.array([False, False, True]))
    assert acc == pytest.approx(2 / 3) and thr > 0.5


def test_kfold_threshold_comes_from_the_other_folds():
    # fold 0: 0.1 F, 0.3 T (best cut 0.2); fold 1: 0.5 F, 0.7 T (best cut 0.6)
    scores = np.array([0.1, 0.3, 0.5, 0.7])
    same = np.array([False, True, False, True])
    fold = np.array([0, 0, 1, 1])
    accs, thresholds = kfold_accuracy(scores, same, fold)
    np.testing.assert_allclose(thresholds, [0.6, 0.2])
    np.testing.assert_allclose(accs, [0.5, 0.5])  # each fold judged with the other's cut: one pair wrong


# -- FAR thresholds -----------------------------------------------------------------------------------------
def test_threshold_at_far_on_uniform_scores():
    scores = np.arange(1000)[::-1] / 1000  # 0.999 ... 0.000, descending
    assert threshold_at_far(scores, 1000, 1e-2) == pytest.approx((0.990 + 0.989) / 2)
    assert threshold_at_far(scores, 1000, 1e-3) == pytest.approx((0.999 + 0.998) / 2)
    for far in (1e-2, 1e-3):
        assert np.mean(scores >= threshold_at_far(scores, 1000, far)) == pytest.approx(far)
    assert np.sum(scores >= threshold_at_far(scores, 1000, 1e-4)) == 0  # below 1/n nothing may pass
    with pytest.raises(ValueError, match="highest impostor scores"):
        threshold_at_far(scores[:5], 1000, 1e-2)


def test_impostor_top_scores_matches_brute_force_in_chunks():
    gen = torch.Generator().manual_seed(0)
    emb = torch.nn.functional.normalize(torch.randn(53, 8, generator=gen), dim=1)
    labels = torch.randint(0, 7, (53,), generator=gen)
    sims = (emb @ emb.T).numpy()
    lab = labels.numpy()
    i, j = np.triu_indices(53, k=1)
    impostors = np.sort(sims[i, j][lab[i] != lab[j]])[::-1]
    top, count = impostor_top_scores(emb, labels, k=40, chunk=7)
    assert count == len(impostors)
    np.testing.assert_allclose(top.numpy(), impostors[:40], atol=1e-6)
    assert threshold_at_far(top, count, 0.02) == pytest.approx(
        (impostors[int(0.02 * count) - 1] + impostors[int(0.02 * count)]) / 2, abs=1e-6
    )


# -- balanced folds -----------------------------------------------------------------------------------------
def _toy_pairs():
    # 12 photos of 6 identities (2 each); fold 0 holds identities 0-2, fold 1 identities 3-5
    labels = np.repeat(np.arange(6), 2)
    pairs = PairSet(
        pairs=np.array([[0, 1], [2, 3], [4, 5], [0, 2], [6, 7], [8, 9], [10, 11]]),
        same=np.array([True, True, True, False, True, True, True]),
        fold=np.array([0, 0, 0, 0, 1, 1, 1]),
    )
    pools = {0: np.arange(0, 6), 1: np.arange(6, 12)}
    return pairs, labels, pools


def test_balance_folds_is_balanced_within_fold_and_keeps_official_pairs():
    pairs, labels, pools = _toy_pairs()
    out = balance_folds(pairs, labels, pools, seed=1)
    np.testing.assert_array_equal(out.pairs[: len(pairs)], pairs.pairs)  # official pairs first, unchanged
    for f in (0, 1):
        in_fold = out.fold == f
        assert out.same[in_fold].sum() == (~out.same[in_fold]).sum() == 3
        added = out.pairs[len(pairs) :][out.fold[len(pairs) :] == f]
        assert np.isin(added, pools[f]).all()  # drawn among the fold's own identities
        assert (labels[added[:, 0]] != labels[added[:, 1]]).all()
    keys = {tuple(sorted(p)) for p in out.pairs.tolist()}
    assert len(keys) == len(out)  # no pair twice


def test_balance_folds_is_deterministic_and_per_fold():
    pairs, labels, pools = _toy_pairs()
    a = balance_folds(pairs, labels, pools, seed=1)
    b = balance_folds(pairs, labels, pools, seed=1)
    np.testing.assert_array_equal(a.pairs, b.pairs)
    draws = {tuple(map(tuple, balance_folds(pairs, labels, pools, seed=s).pairs[7:].tolist())) for s in range(8)}
    assert len(draws) > 1  # the seed matters
    only_fold1 = balance_folds(pairs.select(pairs.fold == 1), labels, pools, seed=1)
    np.testing.assert_array_equal(only_fold1.pairs[3:], a.pairs[a.fold == 1][3:])  # fold 1 ignores fold 0


def test_balance_folds_refuses_a_fold_with_one_identity():
    pairs = PairSet(np.array([[0, 1]]), np.array([True]), np.array([0]))
    with pytest.raises(ValueError, match="fewer than two identities"):
        balance_folds(pairs, np.array([0, 0]), {0: np.array([0, 1])}, seed=0)


# -- real data ----------------------------------------------------------------------------------------------
def test_real_pairs_file_usable_pairs(shared_data):
    lfw = read_lfw_pairs(shared_data / "lfw")
    assert int(lfw.pairs.same.sum()) == 1517 and int((~lfw.pairs.same).sum()) == 19
    assert sorted(set(lfw.pairs.fold.tolist())) == list(range(10))
    assert lfw.dropped == 6000 - 1517 - 19
    # LFW's folds are identity-disjoint, so are the sampling pools
    fold_ids = [{lfw.identities[i] for i in lfw.pools[f]} for f in range(10)]
    assert sum(map(len, fold_ids)) == len(set().union(*fold_ids))
    errata = "Michael_Schumacher_0008.jpg"
    assert all(p.name != errata for p in lfw.photos)


def test_sface_calibration_on_a_small_lfw_subset(shared_data, aligner):
    from bench.registry import TARGETS

    target = TARGETS.create("sface")
    available, reason = TARGETS.entry("sface").availability()
    if not available:
        pytest.skip(reason)
    record = calibrate(target, shared_data / "lfw", aligner=aligner, folds=(0, 1), pairs_per_fold=10,
                       extra_photos_per_identity=0, timing_repeats=1)
    assert record["pairs"]["matched"] == record["pairs"]["mismatched"] == 20
    assert record["pairs"]["folds"] == 2
    assert record["photos_failed"] == 0
    assert record["lfw_accuracy"] >= 0.9  # chance is 0.5
    thr = record["thresholds"]
    assert -1 < thr["far1e-2"] <= thr["far1e-3"] < 1
    assert record["tar_far1e-2"] >= 0.8
    assert record["ms_per_face"] > 0 and record["weights_sha256"] == [s.sha256 for s in target.weights]
    assert record["data"]["subset"]
    assert stale_reason(record, target) == "cached calibration was on a subset of LFW"


def _tiny_lfw(lfw_root, root):
    """A two-fold LFW copy (links to real photos): 4 matched pairs per fold, and mismatched lines of which only
    one per fold names photos present, so each fold needs 3 drawn mismatched pairs."""
    source = lfw_root / "lfw" / "images"
    people = [d.name for d in sorted(source.iterdir()) if len(list(d.glob("*.jpg"))) >= 4][:8]
    for name in people:
        (root / "lfw" / "images" / name).mkdir(parents=True)
        for photo in sorted((source / name).glob("*.jpg"))[:4]:
            (root / "lfw" / "images" / name / photo.name).symlink_to(photo)
    lines = ["2\t4"]
    for fold in range(2):
        a, b, c, d = people[4 * fold : 4 * fold + 4]
        lines += [f"{p}\t1\t2" for p in (a, b, c, d)]
        lines += [f"{a}\t3\t{b}\t3", f"{c}\t9\t{d}\t3", f"Nobody_Here\t1\t{a}\t4", f"{b}\t4\tNobody_Here\t2"]
    (root / "lfw" / "labels").mkdir()
    (root / "lfw" / "labels" / "pairs.txt").write_text("\n".join(lines) + "\n")


@pytest.mark.slow
def test_bench_targets_calibrates_once_then_reuses(lfw_root, tmp_path, monkeypatch, capsys):
    import json

    import bench.measures.calibration_store
    from bench.cli import main
    from bench.data.datasets import load_identity_folders
    from bench.registry import TARGETS

    available, reason = TARGETS.entry("sface").availability()
    if not available:
        pytest.skip(reason)
    _tiny_lfw(lfw_root, tmp_path / "data")
    monkeypatch.setattr(bench.measures.calibration_store, "calibration_dir", lambda: tmp_path / "cal")
    argv = ["targets", "--only", "sface", "--data-root", str(tmp_path / "data"), "--json"]
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in first] == ["sface"]
    row = first[0]
    assert row["pairs"] == {"matched": 8, "mismatched": 8, "official_mismatched": 2, "official_dropped": 6,
                            "folds": 2}
    assert row["lfw_accuracy"] > 0.75 and row["embedding_dim"] == 128 and row["input_size"] == 112
    fingerprint = load_identity_folders(tmp_path / "data", "lfw").fingerprint()
    assert (tmp_path / "cal" / "sface" / f"{fingerprint}.json").exists()  # keyed by the LFW copy
    assert main(argv) == 0  # cached: the same record comes back
    assert json.loads(capsys.readouterr().out)[0]["calibrated"] == row["calibrated"]


def test_cached_calibration_goes_stale_when_weights_or_input_change():
    from bench.measures.calibrate import CALIBRATION_VERSION, input_signature, weights_sha256
    from bench.registry import TARGETS

    target = TARGETS.create("sface")  # not loaded: only its declarations are read
    record = {"weights_sha256": weights_sha256(target), "input": input_signature(target),
              "calibration_version": CALIBRATION_VERSION, "data": {"fingerprint": "abc", "subset": False}}
    assert stale_reason(record, target, "abc") is None
    assert stale_reason(record, target, "other") == "LFW copy differs"
    assert stale_reason({}, target) == "not calibrated yet"
    assert stale_reason({**record, "weights_sha256": ["0" * 64]}, target) == "weights changed"
    changed = {**record["input"], "framing_size": 150}
    assert stale_reason({**record, "input": changed}, target) == "preprocessing or framing changed"


def test_calibrations_are_keyed_by_the_lfw_copy_and_old_files_still_read(tmp_path, monkeypatch):
    import bench.measures.calibration_store as store
    from bench.data.datasets import lfw_fingerprint
    from bench.registry import TARGETS

    monkeypatch.setattr(store, "calibration_dir", lambda: tmp_path)
    old = {"name": "sface", "thresholds": {"far1e-3": 0.5}, "date": "2024-01-01", "data": {"fingerprint": "aaa"}}
    (tmp_path / "sface.json").write_text(json.dumps(old))  # written before calibrations were keyed
    new = {**old, "thresholds": {"far1e-3": 0.6}, "date": "2025-01-01", "data": {"fingerprint": "bbb"}}
    assert store.save_calibration(new) == tmp_path / "sface" / "bbb.json"
    assert set(store.calibrations("sface")) == {"aaa", "bbb"}
    target = TARGETS.create("sface")
    assert target.thresholds("aaa") == {"far1e-3": 0.5} and target.thresholds("bbb") == {"far1e-3": 0.6}
    assert target.thresholds("ccc") == {} and target.thresholds(None) == {}
    assert store.load_calibration("sface")["date"] == "2025-01-01"  # listings show the newest
    assert lfw_fingerprint(tmp_path) is None  # no LFW copy there
