"""Temperature scaling of a classifier's probabilities (Guo et al. 2017, §4.2, doi:10.48550/arXiv.1706.04599;
:mod:`dermlab.stats.calibration`): a mixin of :class:`~lightning_modules.base.LesionClassifier` (``calibrate:
temperature``). T is fitted on each validation epoch's predictions and applied at test and predict time only."""

from __future__ import annotations

import logging

import torch

from dermlab.stats.calibration import fit_temperature, log_of, temperature_nll, tempered

log = logging.getLogger(__name__)


class TemperatureScaling:
    """Mixin: the ``temperature`` buffer's use (``calibrate`` of :class:`~lightning_modules.base.LesionClassifier`)."""

    def applied_temperature(self, split: str) -> torch.Tensor | None:
        """The temperature T applied to ``split``'s probabilities: the fitted one at test / predict time with
        ``calibrate: temperature``, else None (validation, whose predictions T is fitted on, is never scaled)."""
        if split == "val" or self.hparams.get("calibrate", "none") != "temperature":
            return None
        return self.temperature

    def calibrated(self, probabilities: torch.Tensor, split: str) -> torch.Tensor:
        """softmax(log p / T) at test / predict time when ``calibrate: temperature``; otherwise (and always for
        validation, whose predictions T is fitted on) ``probabilities`` unchanged."""
        temperature = self.applied_temperature(split)
        return probabilities if temperature is None else tempered(probabilities, temperature)

    def fit_temperature(self) -> float | None:
        """Fit T on this validation epoch's scored predictions (never the test set) and store it in the
        ``temperature`` buffer; logs ``val/temperature``. None (T kept) when the epoch had no predictions."""
        predictions = self.gathered_predictions("val")
        if predictions is None or not bool(predictions.scored.any()):
            log.warning("calibrate: temperature: no validation predictions this epoch; T stays %.4g",
                        float(self.temperature))
            return None
        rows = predictions.scored_only()
        log_p = log_of(rows.probabilities)
        temperature = fit_temperature(log_p, rows.targets)
        self.temperature.fill_(temperature)
        log.info("temperature scaling: T = %.4f on %d validation images (NLL %.4f -> %.4f)", temperature,
                 len(rows.ids), temperature_nll(log_p, rows.targets, 1.0),
                 temperature_nll(log_p, rows.targets, temperature))
        self.log("val/temperature", temperature, sync_dist=False)
        return temperature
