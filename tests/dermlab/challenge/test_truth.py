"""``dermlab/challenge/truth.py``: the ISIC 2018 task 3 test truth as published with HAM10000
(``lesion_id,image_id,dx,...,dataset``), read and scored as the challenge does."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dermlab.challenge.scoring import score
from dermlab.challenge.truth import read_truth
from dermlab.errors import DataError
from tests.helpers.official_scorer import (
    CATEGORIES,
    DX_COUNTS,
    HAM_TEST_TRUTH,
    assert_same_scores,
    needs_ham_truth,
    official,
)


@pytest.mark.real_data
@needs_ham_truth
def test_ham_layout_test_truth_is_read():
    truth = read_truth(HAM_TEST_TRUTH)
    assert truth.layout == "ham10000" and len(truth.labels) == 1512
    assert truth.labels.sum().to_dict() == DX_COUNTS
    assert truth.weights["ISIC_0035068"] == 0.0 and truth.weights.sum() == 1511  # its dataset is empty
    assert truth.groups[0] == "HAMTEST_0000000" and truth.extra["dx_type"][0] == "follow_up"


@pytest.mark.real_data
@needs_ham_truth
def test_score_on_the_ham_layout_truth_equals_the_official_scorer(tmp_path):
    truth = read_truth(HAM_TEST_TRUTH)
    rng = np.random.default_rng(5)
    raw = rng.random((1512, 7)) + 1.5 * truth.labels.to_numpy()  # a made-up, better-than-chance submission
    submission = pd.DataFrame((raw / raw.sum(1, keepdims=True)).round(6), columns=CATEGORIES)
    submission.insert(0, "image", truth.labels.index)
    submission.to_csv(tmp_path / "pred.csv", index=False)
    # the official scorer reads only the challenge layout: the same truth, one-hot from dx
    truth.labels.rename_axis("image").reset_index().to_csv(tmp_path / "challenge_truth.csv", index=False)
    ours = score(HAM_TEST_TRUTH, tmp_path / "pred.csv")
    assert ours["layout"] == "ham10000" and ours["images"] == 1511
    assert_same_scores(ours, official(tmp_path / "challenge_truth.csv", tmp_path / "pred.csv"))
    submission.drop(index=truth.labels.index.get_loc("ISIC_0035068")).to_csv(tmp_path / "pred.csv", index=False)
    with pytest.raises(DataError, match="ISIC_0035068"):  # weight 0, but the official scorer still wants it
        score(HAM_TEST_TRUTH, tmp_path / "pred.csv")
