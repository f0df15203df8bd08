"""ITA against Fitzpatrick labels (dermlab.stats.skin_type_agreement): values checked by hand and against scipy /
scikit-learn on a small table."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import cohen_kappa_score

from dermlab.stats.skin_type_agreement import ITA_GROUP, ita_agreement


def test_perfect_agreement_is_negative_rho_and_kappa_one():
    result = ita_agreement([60, 45, 30, 15, -10, -40], ["I", "II", "III", "IV", "V", "VI"])
    assert result["spearman_rho"] == pytest.approx(-1.0)
    assert result["kappa_quadratic"] == pytest.approx(1.0) and result["same_group"] == 1.0
    assert result["labels"] == "type" and result["compared"] == 6
    assert result["crosstab"]["V-VI"] == {"very light": 0, "light": 0, "intermediate": 0, "tan": 0, "brown": 1,
                                          "dark": 1}


def test_statistics_match_scipy_and_scikit_learn_and_unknowns_are_left_out():
    ita = np.array([58, 50, 20, 35, -5, 12, -35, 44, np.nan, 30])
    labels = ["I-II", "III-IV", "III-IV", "I-II", "V-VI", "V-VI", "V-VI", "I-II", "I-II", "unknown"]
    result = ita_agreement(ita, labels)
    assert result["compared"] == 8 and result["left_out"] == 2 and result["labels"] == "group"
    ranks = [1, 2, 2, 1, 3, 3, 3, 1]
    assert result["spearman_rho"] == pytest.approx(spearmanr(ita[:8], ranks).statistic)
    # by hand: the ITA groups are I-II, I-II, III-IV, III-IV, V-VI, III-IV, V-VI, I-II (58 very light, 50 light, ...)
    ita_groups = ["I-II", "I-II", "III-IV", "III-IV", "V-VI", "III-IV", "V-VI", "I-II"]
    assert [ITA_GROUP[c] for c in ("very light", "light", "tan", "intermediate", "brown", "tan", "dark", "light")] \
        == ita_groups
    assert result["kappa_quadratic"] == pytest.approx(
        cohen_kappa_score(labels[:8], ita_groups, labels=["I-II", "III-IV", "V-VI"], weights="quadratic"))
    assert result["same_group"] == pytest.approx(5 / 8)


def test_too_few_images_give_nan_not_an_error():
    result = ita_agreement([40.0, np.nan], ["II", "V"])
    assert result["compared"] == 1 and np.isnan(result["spearman_rho"]) and np.isnan(result["kappa_quadratic"])
    with pytest.raises(ValueError, match="2 ITA values for 1 labels"):
        ita_agreement([1.0, 2.0], ["I"])
