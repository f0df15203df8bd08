"""``dermlab compare``: paired tests of two submissions on the same truth (dermlab/commands/compare.py)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from dermlab.challenge.truth import read_truth
from dermlab.cli import main
from dermlab.commands.compare import compare
from dermlab.errors import DataError
from tests.conftest import SHARED_DATA

ISIC2017_TEST_TRUTH = SHARED_DATA / "isic2017" / "ISIC-2017_Test_v2_Part3_GroundTruth.csv"
ISIC2018_TEST_TRUTH = SHARED_DATA / "isic2018" / "ISIC2018_Task3_Test_GroundTruth.csv"


def test_tiny_hand_case(tmp_path):
    # The DeLong example of tests/dermlab/stats/test_paired_tests.py as an ISIC 2016 test truth:
    # z = (5/18) / √(7/162) = 1.336306.
    # McNemar at p > 0.5: A predicts [1, 1, 0 | 0, 0, 0], right on images 1, 2, 4, 5, 6;
    # B predicts [1, 0, 0 | 1, 0, 0], right on 1, 5, 6. b (A right, B wrong) = images 2 and 4 → 2, c = 0:
    # exact, p = 2 · ½² = 0.5.
    ids = [f"ISIC_{i:07d}" for i in range(6)]
    labels = [1, 1, 1, 0, 0, 0]
    (tmp_path / "truth.csv").write_text("".join(f"{i},{float(y)}\n" for i, y in zip(ids, labels, strict=True)))
    for name, scores in (("a", [0.9, 0.6, 0.3, 0.5, 0.2, 0.1]), ("b", [0.7, 0.4, 0.3, 0.8, 0.3, 0.1])):
        (tmp_path / f"{name}.csv").write_text("".join(f"{i},{p}\n" for i, p in zip(ids, scores, strict=True)))
    result = compare(tmp_path / "truth.csv", tmp_path / "a.csv", tmp_path / "b.csv")
    assert (result["layout"], result["images"]) == ("isic2016", 6)
    test = result["delong"]["malignant"]
    assert (test["auc_a"], test["auc_b"]) == (pytest.approx(8 / 9), pytest.approx(11 / 18))
    assert test["z"] == pytest.approx((5 / 18) / math.sqrt(7 / 162))
    assert result["mcnemar"]["malignant"] == {"statistic": 0.0, "p": pytest.approx(0.5), "b": 2, "c": 0,
                                              "method": "exact"}
    assert "holm" not in result  # one category: nothing to adjust


def synthetic_submission(truth_path, path, strength, seed):
    truth = read_truth(truth_path)
    rng = np.random.default_rng(seed)
    labels = truth.labels.to_numpy()
    raw = (1 - strength) * rng.random(labels.shape) + strength * labels
    if truth.one_hot:
        raw = raw / raw.sum(1, keepdims=True)
    frame = pd.DataFrame(raw.round(6), columns=list(truth.submission.categories))
    frame.insert(0, truth.submission.id_column, truth.labels.index)
    frame.to_csv(path, index=False)
    return path


@pytest.mark.real_data
@pytest.mark.skipif(not ISIC2017_TEST_TRUTH.is_file(), reason=f"real truth absent: {ISIC2017_TEST_TRUTH}")
def test_real_isic2017_truth_a_better_submission_wins(tmp_path, capsys):
    good = synthetic_submission(ISIC2017_TEST_TRUTH, tmp_path / "good.csv", 0.5, seed=1)
    poor = synthetic_submission(ISIC2017_TEST_TRUTH, tmp_path / "poor.csv", 0.1, seed=2)
    main(["compare", "--truth", str(ISIC2017_TEST_TRUTH), "--pred", str(good), "--pred", str(poor)])
    result = json.loads(capsys.readouterr().out)
    assert (result["layout"], result["images"]) == ("isic2017", 600)
    assert set(result["delong"]) == set(result["mcnemar"]) == {"melanoma", "seborrheic_keratosis"}
    for category, test in result["delong"].items():
        assert test["auc_a"] > test["auc_b"] and test["z"] > 0 and test["p"] < 1e-3, category
    assert set(result["holm"]) == {"delong", "mcnemar"}
    for family in ("delong", "mcnemar"):
        for category, adjusted in result["holm"][family].items():
            assert result[family][category]["p"] <= adjusted <= 1
    swapped = compare(ISIC2017_TEST_TRUTH, poor, good)
    assert swapped["delong"]["melanoma"]["z"] == pytest.approx(-result["delong"]["melanoma"]["z"])


@pytest.mark.real_data
@pytest.mark.skipif(not ISIC2018_TEST_TRUTH.is_file(), reason=f"real truth absent: {ISIC2018_TEST_TRUTH}")
def test_real_isic2018_truth_has_an_argmax_mcnemar(tmp_path):
    a = synthetic_submission(ISIC2018_TEST_TRUTH, tmp_path / "a.csv", 0.3, seed=1)
    result = compare(ISIC2018_TEST_TRUTH, a, a)
    assert result["images"] == 1511  # ISIC_0035068 has weight 0
    assert result["mcnemar"]["argmax"] == {"statistic": 0.0, "p": 1.0, "b": 0, "c": 0, "method": "exact"}
    assert all(t["p"] == 1.0 and t["z"] == 0.0 for t in result["delong"].values())


def test_both_submissions_are_checked_like_dermlab_score(tmp_path):
    ids = [f"ISIC_{i:07d}" for i in range(4)]
    (tmp_path / "truth.csv").write_text("".join(f"{i},{float(k % 2)}\n" for k, i in enumerate(ids)))
    (tmp_path / "a.csv").write_text("".join(f"{i},0.5\n" for i in ids))
    (tmp_path / "b.csv").write_text("".join(f"{i},0.5\n" for i in ids[:3]))  # a row short
    with pytest.raises(DataError, match="b.csv.*no row for 1 image"):
        compare(tmp_path / "truth.csv", tmp_path / "a.csv", tmp_path / "b.csv")
    with pytest.raises(SystemExit):
        main(["compare", "--truth", str(tmp_path / "truth.csv"), "--pred", str(tmp_path / "a.csv")])
