"""``dermlab/challenge/bootstrap.py``: the intervals ``dermlab score --bootstrap`` prints beside every metric, on
hand-made and on the real ISIC 2016-2018 truths."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dermlab.challenge.bootstrap import bootstrap_intervals, interval_key
from dermlab.challenge.scoring import balanced_accuracy, score
from dermlab.challenge.truth import read_truth
from dermlab.stats.intervals import stratified_resamples
from tests.conftest import SHARED_DATA
from tests.helpers.bootstrap import torchmetrics_values, write_isic2016

REAL_TRUTHS = {
    "isic2016": SHARED_DATA / "isic2016" / "ISBI2016_ISIC_Part3_Training_GroundTruth.csv",
    "isic2017": SHARED_DATA / "isic2017" / "ISIC-2017_Test_v2_Part3_GroundTruth.csv",
    "isic2018": SHARED_DATA / "isic2018" / "ISIC2018_Task3_Test_GroundTruth.csv",
}


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


@pytest.mark.real_data
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


@pytest.mark.real_data
@pytest.mark.slow
def test_2000_resamples_of_the_isic2018_test_set_give_intervals_stable_across_seeds(tmp_path):
    """With the default 2000 resamples the 95 % intervals on the real ISIC 2018 test set hold their estimates and
    their ends move by less than 15 % of the interval's width (plus 0.002) when the resampling seed changes: the
    Monte Carlo error is small beside what the interval says."""
    truth = REAL_TRUTHS["isic2018"]
    if not truth.is_file():
        pytest.skip(f"real truth absent: {truth}")
    pred = submission_for(truth, tmp_path)
    first, second = score(truth, pred, n_boot=2000, seed=0), score(truth, pred, n_boot=2000, seed=1)
    assert_intervals_hold_the_estimates(first)
    for one, other in ((first["macro"], second["macro"]), *((first["per_category"][c], second["per_category"][c])
                                                             for c in first["per_category"])):
        for key in (k for k in one if k.endswith("_ci95")):
            width = one[key][1] - one[key][0]
            assert np.allclose(one[key], other[key], atol=0.15 * width + 2e-3), (key, one[key], other[key])
