"""``dermlab score --bootstrap N``: stratified bootstrap percentile intervals of every metric ``score`` prints.

Each of N resamples draws the scored images with replacement **within each stratum**
(:func:`dermlab.stats.intervals.stratified_resamples`); the strata are the distinct rows of the truth's label columns,
i.e. the true class: benign / malignant (ISIC 2016), melanoma / seborrheic keratosis / neither (ISIC 2017), the
seven diagnoses (ISIC 2018). So each resample keeps the class counts and every AUC stays defined. On each resample
every per-category metric is recomputed (:func:`dermlab.metrics.definitions.binary_metric_values`, vectorised over
resamples), then their macro average and, for one-hot truths, the balanced multi-class accuracy; each interval is
the (α/2, 1 − α/2) percentiles of its metric's resamples (Efron & Tibshirani 1993, ch. 13). The same seed gives the
same digits.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dermlab.metrics import definitions
from dermlab.stats.intervals import percentile_interval, resample_counts, stratified_resamples

CHUNK_ELEMENTS = 1_000_000  # resamples × images handled at once: arrays of a few MB stay in cache and off mmap


def interval_key(name: str, level: float) -> str:
    """``auc`` at level 0.95 → ``auc_ci95`` (0.9 → ``_ci90``, 0.975 → ``_ci97.5``)."""
    return f"{name}_ci{round(level * 100, 6):g}"


def bootstrap_intervals(labels: pd.DataFrame, predictions: pd.DataFrame, categories: list[str], n_boot: int,
                        seed: int = 0, level: float = 0.95, one_hot: bool = False,
                        threshold: float = 0.5) -> dict:
    """Intervals of the per-category metrics, their macro average and (``one_hot``) the balanced accuracy.

    Args:
        labels: (N, K) 0/1 truth of the scored images, every category of the truth (the strata come from all K).
        predictions: (N, ≥ K) probabilities of the same images in the same order.
        categories: the columns to score.
        n_boot: resamples (≥ 1).
        seed: seed of the resampling (the same seed gives the same digits).
        level: coverage of each percentile interval, in (0, 1) (0.95: the 2.5th and 97.5th percentiles).
        one_hot: the truth is one-hot over ``labels``' columns (ISIC 2018, 2019): the balanced multi-class accuracy
            of ``predictions`` over those columns gets an interval too.
        threshold: the decision threshold of accuracy, sensitivity and specificity.

    Returns:
        ``{"per_category": {category: {metric: [low, high]}}, "macro": {metric: [low, high]}}`` plus
        ``"balanced_accuracy": [low, high]`` when ``one_hot``. A metric a category cannot define on the scored
        images (its AUC when they hold one class of it) has the interval [NaN, NaN]; the macro intervals average
        over the categories that define the metric, as the point estimate does.

    Raises:
        ValueError: ``n_boot`` < 1 or ``level`` outside (0, 1).
    """
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    truth = labels.to_numpy()
    _, strata = np.unique(truth, axis=0, return_inverse=True)
    rows = stratified_resamples(strata.ravel(), n_boot, seed)
    n = len(truth)
    probabilities = predictions[list(labels.columns)].to_numpy(dtype=float) if one_hot else None
    replicates: dict[str, dict[str, list[np.ndarray]]] = {c: {} for c in categories}
    balanced: list[np.ndarray] = []
    for start in range(0, n_boot, max(1, CHUNK_ELEMENTS // n)):
        counts = resample_counts(rows[start:start + max(1, CHUNK_ELEMENTS // n)], n)
        for category in categories:
            values = definitions.binary_metric_values(labels[category].to_numpy(),
                                                      predictions[category].to_numpy(dtype=float), counts, threshold)
            for name, array in values.items():
                replicates[category].setdefault(name, []).append(array)
        if one_hot:
            balanced.append(definitions.balanced_accuracy(truth.argmax(1), probabilities, counts))
    per_category = {c: {name: np.concatenate(chunks) for name, chunks in metrics.items()}
                    for c, metrics in replicates.items()}
    names = list(per_category[categories[0]])
    # the mean over the categories where the metric is defined, as the point estimate's (skipna) mean
    macro = {name: definitions.macro(np.stack([per_category[c][name] for c in categories], 1)) for name in names}

    def bounds(values: np.ndarray) -> list[float]:
        """The percentile interval; [NaN, NaN] for a metric the category cannot define (one class only)."""
        if np.isnan(values).any():
            return [float("nan")] * 2
        return [float(x) for x in percentile_interval(values, level)]

    result = {"per_category": {c: {name: bounds(v) for name, v in metrics.items()}
                               for c, metrics in per_category.items()},
              "macro": {name: bounds(v) for name, v in macro.items()}}
    if one_hot:
        result["balanced_accuracy"] = bounds(np.concatenate(balanced))
    return result


def with_intervals(metrics: dict[str, float], intervals: dict[str, list[float]], level: float) -> dict:
    """``metrics`` with ``<name>_ci95: [low, high]`` after each metric that has an interval."""
    out: dict = {}
    for name, value in metrics.items():
        out[name] = value
        if name in intervals:
            out[interval_key(name, level)] = intervals[name]
    return out
