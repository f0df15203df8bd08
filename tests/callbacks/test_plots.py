"""``callbacks/plots.py``: the reliability diagram."""

from __future__ import annotations

import pytest

from callbacks.plots import reliability_figure
from dermlab.stats.calibration import expected_calibration_error
from tests.helpers.calibration import overconfident_set


def test_reliability_figure_title_holds_the_ece(tmp_path):
    log_p, targets = overconfident_set(n=50)
    probabilities = log_p.exp().float()
    figure, ece = reliability_figure(probabilities, targets, "test")
    assert ece == pytest.approx(expected_calibration_error(probabilities, targets))
    assert f"ECE {ece:.4f}" in figure.axes[0].get_title()
    figure.savefig(tmp_path / "r.png")
    assert (tmp_path / "r.png").stat().st_size > 1000
