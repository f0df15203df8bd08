"""The official scorer (isic-challenge-scoring) beside ``dermlab score``, and the real ISIC 2018 task 3 test truth."""

from __future__ import annotations

import pytest
from isic_challenge_scoring.classification import ClassificationMetric, ClassificationScore

from dermlab.challenge.scoring import ISIC2018_CATEGORIES
from tests.conftest import SHARED_DATA

HAM_TEST_TRUTH = SHARED_DATA / "isic2018" / "ISIC2018_Task3_Test_GroundTruth.csv"

needs_ham_truth = pytest.mark.skipif(not HAM_TEST_TRUTH.is_file(), reason=f"real truth absent: {HAM_TEST_TRUTH}")

CATEGORIES = list(ISIC2018_CATEGORIES)

NAMES = {"auc": "auc", "sensitivity": "sensitivity", "specificity": "specificity", "accuracy": "accuracy",
         "average_precision": "ap"}


def official(truth, prediction) -> ClassificationScore:
    return ClassificationScore.from_file(truth, prediction, ClassificationMetric.AUC)


def assert_same_scores(ours: dict, theirs: ClassificationScore) -> None:
    for category, values in ours["per_category"].items():
        for name, their_name in NAMES.items():
            assert values[name] == pytest.approx(theirs.per_category.loc[category, their_name], abs=1e-6), \
                (category, name)
    if "balanced_accuracy" in ours:
        assert ours["balanced_accuracy"] == pytest.approx(theirs.aggregate["balanced_accuracy"], abs=1e-9)


DX_COUNTS = {"NV": 909, "BKL": 217, "MEL": 171, "BCC": 93, "DF": 44, "AKIEC": 43, "VASC": 35}
