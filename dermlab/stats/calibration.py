"""Calibration: temperature scaling and the numbers behind a reliability diagram.

Temperature scaling (Guo, Pleiss, Sun & Weinberger, "On Calibration of Modern Neural Networks", ICML 2017, §4.2):
one scalar T > 0 divides the logits before the softmax, q = softmax(z / T); T is fitted by minimising the
negative log-likelihood of the *validation* set. T > 1 softens an over-confident model. Since z / T keeps the
order of the logits, the argmax (so accuracy, balanced accuracy, the confusion matrix) never changes; for two
classes P(positive) = sigmoid((z_1 − z_0) / T) is a monotone function of the same log-odds, so AUC, average
precision and every metric at threshold 0.5 are unchanged too. (For more than two classes a one-vs-rest AUC can
move a little: the order of q_c across images is not always that of p_c.)

The suite applies T to the log of the model's final probabilities p (after view averaging and TTA):
softmax(log p / T) equals softmax(z / T) exactly when p = softmax(z), since log p = z − logsumexp(z) differs from z
by a per-image constant.

Reliability diagram and ECE (Guo et al. 2017, §2, Eq. 3; Naeini et al. 2015): the confidences are put in M = 15
equal-width bins; ECE = Σ_m (``|B_m|`` / n) ``|acc(B_m) − conf(B_m)|``. ECE comes from
:mod:`dermlab.metrics.definitions`, so it is the same number as the suite's ``ece`` metric.
"""

from __future__ import annotations

import logging
import math

import torch

from dermlab.metrics import definitions

log = logging.getLogger(__name__)

N_BINS = definitions.ECE_BINS
#: Fitted temperatures are kept in [1/100, 100]. When every validation image's argmax is right the NLL falls
#: monotonically as T -> 0 (no minimum): T is then the lower bound, with a warning.
T_RANGE = (1e-2, 1e2)


def log_of(probabilities: torch.Tensor, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The log p of (N, C) probabilities in ``dtype``, with 0 clamped to the smallest normal float32 (a softmax that
    underflowed; its log, −87.3, stands for any lower one)."""
    return probabilities.to(dtype).clamp_min(torch.finfo(torch.float32).tiny).log()


def tempered(probabilities: torch.Tensor, temperature: float | torch.Tensor) -> torch.Tensor:
    """softmax(log p / T) of (N, C) probabilities p: temperature scaling of the prediction (computed in float32,
    returned in p's dtype).

    Raises:
        ValueError: T not positive.
    """
    temperature = torch.as_tensor(temperature, device=probabilities.device).float()
    if not bool(temperature > 0):
        raise ValueError(f"the temperature must be > 0, got {float(temperature)}")
    return (log_of(probabilities, torch.float32) / temperature).softmax(1).to(probabilities.dtype)


def temperature_nll(log_probabilities: torch.Tensor, targets: torch.Tensor, temperature: float) -> float:
    """Mean NLL of the targets under softmax(log p / T) (nats per image)."""
    scaled = log_probabilities.double() / temperature
    return float(torch.nn.functional.cross_entropy(scaled, targets.long()))


def fit_temperature(log_probabilities: torch.Tensor, targets: torch.Tensor, max_iter: int = 100) -> float:
    """The T > 0 minimising the mean NLL of ``targets`` under softmax(log p / T) (Guo et al. 2017, §4.2).

    Minimised over log T (so T stays positive) by L-BFGS with a strong-Wolfe line search, in float64, from T = 1.

    Args:
        log_probabilities: (N, C) validation log-probabilities (or logits: the result is the same).
        targets: (N,) true classes in 0..C−1.
        max_iter: L-BFGS iterations.

    Returns:
        T, clamped to :data:`T_RANGE` (with a warning when clamped); the lower bound when every image's argmax is
        right (then the NLL has no minimum).

    Raises:
        ValueError: no rows, shapes that do not match, targets outside 0..C−1, or non-finite log-probabilities.
    """
    if log_probabilities.ndim != 2 or targets.shape != log_probabilities.shape[:1] or len(targets) == 0:
        raise ValueError(f"fit_temperature needs (N, C) log-probabilities and (N,) targets with N > 0, got "
                         f"{tuple(log_probabilities.shape)} and {tuple(targets.shape)}")
    if int(targets.min()) < 0 or int(targets.max()) >= log_probabilities.shape[1]:
        raise ValueError(f"targets must be in 0..{log_probabilities.shape[1] - 1}, got "
                         f"{int(targets.min())}..{int(targets.max())}")
    if not bool(torch.isfinite(log_probabilities).all()):
        raise ValueError("fit_temperature: the log-probabilities hold NaN or ±inf (a diverged model?)")
    logits = log_probabilities.detach().double().cpu()
    targets = targets.detach().long().cpu()
    others = logits.scatter(1, targets[:, None], -math.inf).amax(1)
    if bool((logits.gather(1, targets[:, None]).squeeze(1) > others).all()):
        # every image's argmax right: the NLL falls all the way to T -> 0 and has no minimum
        log.warning("temperature scaling: every validation image is predicted right, so the NLL has no minimum "
                    "(it falls as T -> 0); T set to the lower bound %g", T_RANGE[0])
        return T_RANGE[0]
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([log_t], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(logits / log_t.exp(), targets)
        loss.backward()
        return loss

    with torch.enable_grad():
        optimiser.step(closure)
    temperature = math.exp(float(log_t.detach()))
    low, high = T_RANGE
    if not low <= temperature <= high:
        kept = min(max(temperature, low), high)
        log.warning("temperature scaling: the validation NLL still falls at T = %.3g; T kept at %g%s", temperature,
                    kept, " (the model does no better than a flat prediction on the validation set)"
                    if temperature > high else "")
        temperature = kept
    return temperature


def confidence_and_outcome(probabilities: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """What the reliability diagram bins, as the ``ece`` metric does: for two classes P(positive) and whether the
    image is positive; otherwise the top-label confidence max_c p_c and whether the argmax is right (an undecided
    row, :func:`dermlab.metrics.definitions.decided_argmax`, is wrong). (N, C) probabilities and (N,) targets → two
    (N,) float tensors."""
    if probabilities.shape[1] == 2:
        return probabilities[:, 1].float(), targets.float()
    decided = torch.from_numpy(definitions.decided_argmax(probabilities.detach().double().cpu().numpy()))
    return probabilities.float().max(1).values, decided.to(targets.device).eq(targets).float()


def expected_calibration_error(probabilities: torch.Tensor, targets: torch.Tensor, n_bins: int = N_BINS) -> float:
    """ECE (L1, ``n_bins`` equal-width bins) of (N, C) probabilities and (N,) targets, the number a run logs as
    ``ece``: :func:`dermlab.metrics.definitions.binary_ece` of P(positive) for two classes, the top-label
    :func:`dermlab.metrics.definitions.top_label_ece` otherwise."""
    probabilities = probabilities.detach().double().cpu().numpy()
    targets = targets.detach().long().cpu().numpy()
    if probabilities.shape[1] == 2:
        return float(definitions.binary_ece(targets, probabilities[:, 1], n_bins=n_bins)[0])
    return float(definitions.top_label_ece(targets, probabilities, n_bins=n_bins)[0])


def reliability_bins(confidence: torch.Tensor, outcome: torch.Tensor, n_bins: int = N_BINS) -> dict[str, torch.Tensor]:
    """Per-bin counts, mean confidence and observed frequency of ``n_bins`` equal-width bins of [0, 1].

    Bin m holds m/M ≤ confidence < (m+1)/M (torchmetrics' bucketing); a confidence of exactly 1 goes to the last
    bin. Returns ``edges`` (M+1,), ``count`` (M,), ``confidence`` and ``frequency`` (M,; NaN in an empty bin).
    """
    edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)
    confidence, outcome = confidence.double().cpu(), outcome.double().cpu()
    index = (torch.bucketize(confidence, edges, right=True) - 1).clamp(0, n_bins - 1)
    count = torch.zeros(n_bins, dtype=torch.float64).scatter_add_(0, index, torch.ones_like(confidence))
    mean_confidence = torch.zeros(n_bins, dtype=torch.float64).scatter_add_(0, index, confidence) / count
    frequency = torch.zeros(n_bins, dtype=torch.float64).scatter_add_(0, index, outcome) / count
    return {"edges": edges, "count": count, "confidence": mean_confidence, "frequency": frequency}
