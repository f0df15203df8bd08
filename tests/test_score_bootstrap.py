"""``dermlab score --bootstrap``: vectorised resample metrics (dermlab/metrics/definitions.py) and the intervals
beside every printed metric (dermlab/challenge/bootstrap.py), on hand-made and on the real ISIC 2016-2018 truths."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dermlab.challenge.bootstrap import bootstrap_intervals, interval_key
from dermlab.challenge.scoring import balanced_accuracy, score
from dermlab.challenge.truth import read_truth
from dermlab.cli import main
from dermlab.metrics.definitions import binary_metric_values as binary_metrics_resampled
from dermlab.stats.intervals import resample_counts, stratified_resamples
from tests.conftest import SHARED_DATA
from tests.metric_references import reference_binary_metrics

REAL_TRUTHS = {
    "isic2016": SHARED_DATA / "isic2016" / "ISBI2016_ISIC_Part3_Training_GroundTruth.csv",
    "isic2017": SHARED_DATA / "isic2017" / "ISIC-2017_Test_v2_Part3_GroundTruth.csv",
    "isic2018": SHARED_DATA / "isic2018" / "ISIC2018_Task3_Test_GroundTruth.csv",
}


def torchmetrics_values(labels, scores) -> dict[str, float]:
    """The binary metrics by torchmetrics' own classes and the ISIC 2024 host's formula: the references the suite's
    definitions must reproduce."""
    return reference_binary_metrics(labels, scores)


def tied_case(rng, n):
    labels = np.r_[0, 1, rng.integers(0, 2, n - 2)]
    scores = np.round(np.clip(labels * 0.3 + rng.random(n) * 0.7, 0, 1), int(rng.integers(1, 3)))
    scores[:2] = 1.0  # p = 1 has an ECE bin of its own
    scores[2:4] = 0.5  # exactly on the threshold: negative (p > 0.5 is positive)
    return labels, scores


def test_resample_metrics_equal_torchmetrics_on_the_test_set_and_on_a_resample():
    rng = np.random.default_rng(0)
    for n in (7, 60, 500):
        labels, scores = tied_case(rng, n)
        ones = binary_metrics_resampled(labels, scores, np.ones((1, n)))
        reference = torchmetrics_values(labels, scores)
        assert set(ones) == set(reference)
        for name, value in reference.items():
            assert ones[name][0] == pytest.approx(value, abs=1e-6), (n, name)
        # a resample given as multiplicities equals torchmetrics on the resampled rows themselves
        rows = stratified_resamples(labels, 3, seed=n)
        resampled = binary_metrics_resampled(labels, scores, resample_counts(rows, n))
        for b, chosen in enumerate(rows):
            for name, value in torchmetrics_values(labels[chosen], scores[chosen]).items():
                assert resampled[name][b] == pytest.approx(value, abs=1e-6), (n, b, name)


def test_resample_metrics_by_hand():
    # labels [1, 0, 1, 0], scores [0.9, 0.6, 0.6, 0.2]; image 0 drawn twice, image 2 never: positives {0.9, 0.9},
    # negatives {0.6, 0.2}. AUC: both positives beat both negatives → 1. Threshold 0.5: TP 2, TN 1 (0.2), FP 1
    # (0.6) → sens 1, spec 1/2, acc 3/4. AP: the positives sit on top → 1.
    # ECE: bin [0.8667, 0.9333) holds 0.9 twice, both positive → |1.8 − 2| = 0.2; bin [0.6, 0.6667) holds 0.6
    # (negative) → 0.6; bin [0.2, 0.2667) holds 0.2 (negative) → 0.2; (0.2 + 0.6 + 0.2) / 4 = 0.25
    values = binary_metrics_resampled([1, 0, 1, 0], [0.9, 0.6, 0.6, 0.2], [[2, 1, 0, 1]])
    expected = {"auc": 1, "sensitivity": 1, "specificity": 0.5, "accuracy": 0.75, "average_precision": 1,
                "pauc_tpr80": 0.2, "ece": 0.25}
    assert {k: float(v[0]) for k, v in values.items()} == pytest.approx(expected)


def test_stratified_resamples_keep_every_stratum_count():
    strata = np.array([2, 0, 1, 1, 0, 2, 2, 1, 1])
    for row in stratified_resamples(strata, 50, seed=1):
        assert np.bincount(strata[row]).tolist() == np.bincount(strata).tolist()


def test_one_resample_equals_the_metrics_of_its_rows_including_the_balanced_accuracy():
    """With n_boot = 1 each interval is [v, v], v the metric of the one resample: recompute it from the rows that
    resample drew (strata: the true class of a one-hot truth) with torchmetrics and the official balanced accuracy."""
    rng = np.random.default_rng(4)
    classes = np.r_[0, 1, 2, rng.integers(0, 3, 37)]
    truth = pd.DataFrame(np.eye(3)[classes], columns=["a", "b", "c"])
    raw = (rng.dirichlet(np.ones(3), 40) + np.eye(3)[classes] * 0.3) / 1.3
    probabilities = pd.DataFrame(np.round(raw, 1), columns=["a", "b", "c"])  # rounded: ties for the top occur
    intervals = bootstrap_intervals(truth, probabilities, ["a", "b", "c"], n_boot=1, seed=9, one_hot=True)
    # strata: the distinct truth rows in sorted order, (0,0,1) (0,1,0) (1,0,0), i.e. classes c, b, a
    rows = stratified_resamples(2 - classes, 1, seed=9)[0]
    expected_balanced = balanced_accuracy(truth.to_numpy()[rows], probabilities.to_numpy()[rows])
    assert intervals["balanced_accuracy"] == pytest.approx([expected_balanced] * 2)
    for category in "abc":
        reference = torchmetrics_values(truth[category].to_numpy()[rows], probabilities[category].to_numpy()[rows])
        for name, value in reference.items():
            assert intervals["per_category"][category][name] == pytest.approx([value] * 2, abs=1e-6)


def test_interval_keys_follow_the_level():
    assert [interval_key("auc", level) for level in (0.95, 0.9, 0.975)] == ["auc_ci95", "auc_ci90", "auc_ci97.5"]


def write_isic2016(folder, n, seed=0):
    """A test-layout ISIC 2016 truth (headerless ``id,0.0|1.0``) of n images, ¼ malignant, and a submission whose
    AUC is about 0.8."""
    rng = np.random.default_rng(seed)
    ids = [f"ISIC_{i:07d}" for i in range(n)]
    labels = (np.arange(n) % 4 == 0).astype(float)
    scores = np.clip(0.35 * labels + 0.65 * rng.random(n), 0, 1)
    (folder / "truth.csv").write_text("".join(f"{i},{y}\n" for i, y in zip(ids, labels, strict=True)))
    (folder / "pred.csv").write_text("image,malignant\n" + "".join(f"{i},{p:.6f}\n" for i, p in
                                                                    zip(ids, scores, strict=True)))
    return folder / "truth.csv", folder / "pred.csv"


def assert_intervals_hold_the_estimates(result, level_key="ci95"):
    sections = [*result["per_category"].values(), result["macro"]]
    for section in sections:
        names = [k for k in section if "_ci" not in k]
        assert names and all(f"{k}_{level_key}" in section for k in names)
        for name in names:
            low, high = section[f"{name}_{level_key}"]
            assert low - 1e-6 <= section[name] <= high + 1e-6, name
    if "balanced_accuracy" in result:
        low, high = result[f"balanced_accuracy_{level_key}"]
        assert low <= result["balanced_accuracy"] <= high


def test_intervals_hold_the_estimate_shrink_with_more_rows_and_repeat_with_the_seed(tmp_path):
    (tmp_path / "small").mkdir()
    (tmp_path / "large").mkdir()
    small = score(*write_isic2016(tmp_path / "small", 60), n_boot=200, seed=3)
    large = score(*write_isic2016(tmp_path / "large", 1500), n_boot=200, seed=3)
    for result in (small, large):
        assert_intervals_hold_the_estimates(result)
        assert result["bootstrap"]["resamples"] == 200
    width = {name: np.diff(r["per_category"]["malignant"]["auc_ci95"])[0] for name, r in
             (("small", small), ("large", large))}
    assert width["large"] < width["small"] / 3  # width ~ 1/√n: √(1500/60) = 5
    again = score(tmp_path / "small" / "truth.csv", tmp_path / "small" / "pred.csv", n_boot=200, seed=3)
    other = score(tmp_path / "small" / "truth.csv", tmp_path / "small" / "pred.csv", n_boot=200, seed=4)
    assert again == small
    assert other["macro"]["auc_ci95"] != small["macro"]["auc_ci95"]


def test_without_bootstrap_the_output_is_unchanged(tmp_path):
    truth, pred = write_isic2016(tmp_path, 40)
    plain = score(truth, pred)
    assert "bootstrap" not in plain and not any("_ci" in k for k in plain["per_category"]["malignant"])
    with_ci = score(truth, pred, n_boot=20)
    assert {k: v for k, v in with_ci["per_category"]["malignant"].items() if "_ci" not in k} == \
        plain["per_category"]["malignant"]


def test_a_category_with_one_class_has_no_interval_for_what_it_cannot_define(tmp_path):
    """Six benign images: no AUC, sensitivity, AP or partial AUC (NaN, no interval); accuracy and specificity
    (4 of 6 scores ≤ 0.5) keep theirs."""
    ids = [f"ISIC_{i:07d}" for i in range(6)]
    (tmp_path / "truth.csv").write_text("".join(f"{i},0.0\n" for i in ids))
    scores = [.1, .2, .3, .4, .6, .7]
    (tmp_path / "pred.csv").write_text("".join(f"{i},{p}\n" for i, p in zip(ids, scores, strict=True)))
    scored = score(tmp_path / "truth.csv", tmp_path / "pred.csv", n_boot=10)["per_category"]["malignant"]
    for name in ("auc", "sensitivity", "average_precision", "pauc_tpr80"):
        assert scored[name] != scored[name] and all(v != v for v in scored[f"{name}_ci95"]), name
    assert scored["specificity"] == pytest.approx(4 / 6)
    low, high = scored["specificity_ci95"]
    assert 0 <= low < 4 / 6 < high <= 1  # resampled from the six benign images


def submission_for(truth_path, folder, seed=0):
    """A submission in the truth's official layout: noisy probabilities that lean towards the truth."""
    truth = read_truth(truth_path)
    rng = np.random.default_rng(seed)
    labels = truth.labels.to_numpy()
    raw = 0.6 * rng.random(labels.shape) + 0.4 * labels
    if truth.one_hot:
        raw = raw / raw.sum(1, keepdims=True)
    frame = pd.DataFrame(raw.round(6), columns=list(truth.submission.categories))
    frame.insert(0, truth.submission.id_column, truth.labels.index)
    path = folder / f"pred_{seed}.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("layout", sorted(REAL_TRUTHS))
def test_real_truth_layouts(layout, tmp_path):
    truth = REAL_TRUTHS[layout]
    if not truth.is_file():
        pytest.skip(f"real truth absent: {truth}")
    result = score(truth, submission_for(truth, tmp_path), n_boot=100, seed=0)
    assert_intervals_hold_the_estimates(result)
    assert ("balanced_accuracy_ci95" in result) == (layout == "isic2018")
    counts = {"isic2016": 900, "isic2017": 600, "isic2018": 1511}  # 2018: ISIC_0035068 has weight 0
    assert result["images"] == counts[layout]


def test_the_command_prints_intervals_and_refuses_them_for_masks(tmp_path, capsys):
    truth, pred = write_isic2016(tmp_path, 40)
    main(["score", "--truth", str(truth), "--pred", str(pred), "--bootstrap", "50", "--seed", "1", "--level", "0.9"])
    printed = json.loads(capsys.readouterr().out)
    assert len(printed["per_category"]["malignant"]["pauc_tpr80_ci90"]) == 2
    assert printed["bootstrap"] == {"resamples": 50, "seed": 1, "level": 0.9,
                                    "method": "percentile, images resampled within each true class"}
    with pytest.raises(SystemExit):
        main(["score", "--seg", str(tmp_path), str(tmp_path), "--bootstrap", "10"])


@pytest.mark.slow
def test_2000_resamples_of_the_isic2018_test_set_take_well_under_a_minute(tmp_path):
    import time

    truth = REAL_TRUTHS["isic2018"]
    if not truth.is_file():
        pytest.skip(f"real truth absent: {truth}")
    pred = submission_for(truth, tmp_path)
    start = time.perf_counter()
    result = score(truth, pred, n_boot=2000, seed=0)
    assert time.perf_counter() - start < 30
    assert_intervals_hold_the_estimates(result)
