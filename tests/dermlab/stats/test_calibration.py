"""Temperature scaling, ECE and reliability bins (dermlab.stats.calibration)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import minimize_scalar
from sklearn.metrics import roc_auc_score

from dermlab.stats.calibration import (
    confidence_and_outcome,
    expected_calibration_error,
    fit_temperature,
    reliability_bins,
    temperature_nll,
    tempered,
)
from tests.helpers.calibration import overconfident_set


def test_fitted_temperature_matches_a_scipy_minimisation_of_the_nll():
    log_p, targets = overconfident_set(classes=3)
    fitted = fit_temperature(log_p, targets)
    reference = minimize_scalar(lambda t: temperature_nll(log_p, targets, t), bounds=(0.05, 20), method="bounded",
                                options={"xatol": 1e-8})
    assert fitted == pytest.approx(reference.x, rel=1e-4)
    # labels were drawn from softmax(z) and the logits given are 4z: the NLL-optimal T is near 4
    assert 3.0 < fitted < 5.5


@pytest.mark.parametrize("classes", [2, 4])
def test_temperature_on_an_overconfident_set_is_above_1_lowers_ece_and_keeps_argmax(classes):
    log_p, targets = overconfident_set(classes=classes)
    probabilities = log_p.exp().float()
    temperature = fit_temperature(log_p, targets)
    calibrated = tempered(probabilities, temperature)
    assert temperature > 1
    before, after = expected_calibration_error(probabilities, targets), expected_calibration_error(calibrated, targets)
    assert after < before
    assert temperature_nll(log_p, targets, temperature) < temperature_nll(log_p, targets, 1.0)
    assert torch.equal(calibrated.argmax(1), probabilities.argmax(1))  # argmax (so accuracy) unchanged
    if classes == 2:  # binary AUC unchanged: P(positive) is a monotone function of the same log-odds
        log_odds = log_p[:, 1] - log_p[:, 0]  # float64: the exact ranking
        assert roc_auc_score(targets, calibrated[:, 1]) == pytest.approx(roc_auc_score(targets, log_odds), abs=1e-12)
        # the float32 probabilities agree up to the ties of P(positive) rounded to 1.0 (log-odds > 16.6), which
        # the tempered ones no longer share: 0.8286 vs 0.8286 here
        assert roc_auc_score(targets, probabilities[:, 1]) == pytest.approx(roc_auc_score(targets, log_odds),
                                                                            abs=1e-4)


def test_tempered_by_hand():
    # p = (0.8, 0.2), T = 2: softmax(log p / 2) = (√0.8, √0.2) / (√0.8 + √0.2) = (2/3, 1/3)
    got = tempered(torch.tensor([[0.8, 0.2]]), 2.0)
    assert torch.allclose(got, torch.tensor([[2 / 3, 1 / 3]]), atol=1e-6)
    # T = 1 changes nothing; it equals softmax(z / T) of the logits behind p
    logits = torch.tensor([[2.0, -1.0, 0.5]])
    assert torch.allclose(tempered(logits.softmax(1), 1.0), logits.softmax(1), atol=1e-6)
    assert torch.allclose(tempered(logits.softmax(1), 3.0), (logits / 3).softmax(1), atol=1e-6)
    with pytest.raises(ValueError, match="> 0"):
        tempered(torch.tensor([[0.5, 0.5]]), 0.0)


def test_fit_temperature_refuses_bad_input():
    with pytest.raises(ValueError, match="targets must be"):
        fit_temperature(torch.zeros(2, 2), torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="N > 0"):
        fit_temperature(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="NaN"):
        fit_temperature(torch.tensor([[float("nan"), 0.0]]), torch.tensor([0]))


def test_a_separable_validation_set_keeps_t_in_range():
    # every image right: the NLL falls as T -> 0, so T stops at the lower bound
    log_p = torch.tensor([[0.9, 0.1], [0.2, 0.8]]).log()
    assert fit_temperature(log_p, torch.tensor([0, 1])) == pytest.approx(1e-2)


def test_reliability_bins_and_ece_by_hand():
    # binary, P(positive) = 0.05, 0.1, 0.9, 0.95, 1.0 with truth 0, 1, 1, 1, 1; 15 bins of width 1/15 ≈ 0.0667:
    # 0.05 → bin 0; 0.1 → bin 1 (0.0667–0.133); 0.9 → bin 13 (0.867–0.933); 0.95 and 1.0 → bin 14
    probabilities = torch.tensor([0.05, 0.1, 0.9, 0.95, 1.0])
    targets = torch.tensor([0, 1, 1, 1, 1])
    confidence, outcome = confidence_and_outcome(torch.stack([1 - probabilities, probabilities], 1), targets)
    bins = reliability_bins(confidence, outcome)
    counts = bins["count"].tolist()
    assert counts[0] == 1 and counts[1] == 1 and counts[13] == 1 and counts[14] == 2 and sum(counts) == 5
    assert bins["frequency"][0] == 0 and bins["frequency"][1] == 1 and bins["frequency"][14] == 1
    assert bins["confidence"][14] == pytest.approx(0.975)
    assert np.isnan(bins["frequency"][5].item())  # empty bin
    # ECE (torchmetrics puts p = 1.0 in a bin of its own): (|0−.05| + |1−.1| + |1−.9| + |1−.95| + |1−1|) / 5 = 0.22
    two_columns = torch.stack([1 - probabilities, probabilities], 1)
    assert expected_calibration_error(two_columns, targets) == pytest.approx(0.22, abs=1e-6)


def test_multiclass_confidence_is_the_top_label():
    probabilities = torch.tensor([[0.7, 0.2, 0.1], [0.3, 0.3, 0.4], [0.1, 0.6, 0.3]])
    confidence, outcome = confidence_and_outcome(probabilities, torch.tensor([0, 1, 1]))
    assert torch.allclose(confidence, torch.tensor([0.7, 0.4, 0.6])) and outcome.tolist() == [1.0, 0.0, 1.0]
    # ECE: bins 0.7 (right), 0.4 (wrong), 0.6 (right) each alone: (0.3 + 0.4 + 0.4) / 3
    assert expected_calibration_error(probabilities, torch.tensor([0, 1, 1])) == pytest.approx(1.1 / 3, abs=1e-6)
