"""Intervals a grid report computes from its cells' predictions: per cell, pooled per row, out-of-fold and of
a fold ensemble.

The metrics recomputed from a predictions file (:mod:`dermlab.files.predictions`) are ``test/auc`` (two classes:
the ROC AUC of P(class 1); more classes: the macro one-vs-rest AUC over the classes present) and, for more than two
classes, ``test/balanced_accuracy`` (the mean recall of the argmax over the classes present), each by the one
definition a run logs (:mod:`dermlab.metrics.definitions`). Every interval is the 95 %
percentile interval of the stratified bootstrap (resampling images within class, Efron & Tibshirani 1993,
ch. 13; :mod:`dermlab.stats.intervals`), with the grid's ``statistics: {n_boot, seed}``.

**Pooled interval of a row** (:func:`pooled_interval`): the row's finished cells (seeds, folds, tasks) are
grouped by their set of test images. Each bootstrap replicate draws, per group, one resample of that group's
images — within each stratum, the stratum being the image's true class in every cell of the group (so cells on
the same images with different targets, e.g. the ``arl`` paper's two tasks, keep every class count of every
task) — scores every cell of the group on that same resample, and the replicate's value is the mean over all of
the row's cells. Groups with different images are resampled independently. The point estimate is the mean of the
cells' metrics on their full test sets, i.e. the row's mean. The interval measures how much the row's mean would
move with another draw of test images from the same population; it does not include the spread over seeds,
which the row's ± std shows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from dermlab.errors import DataError
from dermlab.files.predictions import Predictions
from dermlab.metrics import definitions
from dermlab.stats.intervals import Interval

Metric = Callable[[np.ndarray, np.ndarray], float]


def auc(target: np.ndarray, probabilities: np.ndarray) -> float:
    """``test/auc`` as a run logs it (:func:`dermlab.metrics.definitions.auc`): for (N, 2) probabilities the
    binary AUC of P(class 1), for (N, C > 2) the macro one-vs-rest AUC over the classes present (an absent class is
    left out, not counted as 0). NaN where no AUC is defined (one class only)."""
    return float(definitions.auc(target, probabilities)[0])


def balanced_accuracy(target: np.ndarray, probabilities: np.ndarray) -> float:
    """``test/balanced_accuracy`` as a run logs it (:func:`dermlab.metrics.definitions.balanced_accuracy`): the mean
    recall of the argmax over the classes present (the ISIC 2018 balanced multi-class accuracy)."""
    return float(definitions.balanced_accuracy(target, probabilities)[0])


RECOMPUTABLE: dict[str, Metric] = {"test/auc": auc, "test/balanced_accuracy": balanced_accuracy}


def metric_function(metric: str, n_classes: int) -> Metric | None:
    """The function recomputing ``metric`` from predictions of ``n_classes`` classes, or None where the report
    cannot (any other metric; balanced accuracy of a binary task, which the suite does not log)."""
    if metric == "test/balanced_accuracy" and n_classes == 2:
        return None
    return RECOMPUTABLE.get(metric)


def _strata(targets: np.ndarray) -> list[np.ndarray]:
    """Row positions of each stratum of a (K, N) target matrix: images with the same target in every row,
    in the order of ``np.unique`` (for K = 1: the classes in ascending order, as :mod:`dermlab.stats.intervals`)."""
    _, inverse = np.unique(targets.T, axis=0, return_inverse=True)
    return [np.flatnonzero(inverse.ravel() == s) for s in range(inverse.max() + 1)]


def pooled_interval(cells: Sequence[Predictions], metric: Metric, n_boot: int = 2000, seed: int = 0,
                    level: float = 0.95) -> Interval:
    """The row's mean metric over ``cells`` with its pooled stratified bootstrap interval (module docstring).

    Args:
        cells: the row's cells' test predictions (scored rows only are used).
        metric: f(target (N,), probabilities (N, C)) → float.
        n_boot: bootstrap replicates (≥ 1).
        seed: the NumPy ``default_rng`` seed of the resampling.
        level: coverage of the percentile interval, in (0, 1).

    With one cell the interval is :func:`dermlab.stats.intervals.stratified_bootstrap`'s, to the last digit.

    Raises:
        ValueError: no cells, ``n_boot`` < 1 or ``level`` outside (0, 1).
    """
    if not cells or n_boot < 1 or not 0 < level < 1:
        raise ValueError(f"need cells, n_boot ≥ 1 and level in (0, 1); got {len(cells)} cells, {n_boot}, {level}")
    groups: dict[tuple, list[Predictions]] = {}
    for cell in (c.kept() for c in cells):
        groups.setdefault(tuple(sorted(cell.images)), []).append(cell)
    aligned = [[c.aligned_to(members[0].images) for c in members] for members in groups.values()]
    strata = [_strata(np.stack([c.target for c in members])) for members in aligned]
    rng = np.random.default_rng(seed)
    replicates = np.empty(n_boot)
    for b in range(n_boot):
        values = []
        for members, by_stratum in zip(aligned, strata, strict=True):
            rows = np.concatenate([rng.choice(s, size=len(s), replace=True) for s in by_stratum])
            values += [metric(c.target[rows], c.probabilities[rows]) for c in members]
        replicates[b] = np.mean(values)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(replicates, [tail, 100 - tail])
    estimate = float(np.mean([metric(c.target, c.probabilities) for members in aligned for c in members]))
    return Interval(estimate, float(low), float(high), level, n_boot)


def cell_interval(cell: Predictions, metric: Metric, n_boot: int = 2000, seed: int = 0) -> Interval:
    """One cell's metric on its scored test images with its stratified bootstrap interval."""
    return pooled_interval([cell], metric, n_boot, seed)


def out_of_fold(folds: dict[str, Predictions], cv_images: Sequence[str]) -> Predictions:
    """The folds' held-out predictions concatenated (in the order of ``folds``), checked to cover the CV set.

    Args:
        folds: fold label → that fold's ``predictions_val.csv``.
        cv_images: every image of the cross-validation set (training and validation images of the folds).

    Raises:
        DataError: an image is predicted by more than one fold (naming it and the files), a CV image by none, an
            image outside the CV set, or the folds disagree on the class names.
    """
    parts = list(folds.values())
    if not parts:
        raise DataError("no fold has held-out predictions (predictions_val.csv) to concatenate.")
    names = {p.class_names for p in parts}
    if len(names) > 1:
        raise DataError(f"the folds' predictions name different classes: {sorted(names)}.")
    images = np.concatenate([p.images for p in parts])
    seen: dict[str, str] = {}
    twice = []
    for part in parts:
        for image in part.images:
            if image in seen:
                twice.append(f"{image} ({seen[image]} and {part.source})")
            seen[image] = part.source
    if twice:
        raise DataError(f"{len(twice)} image(s) are held out by more than one fold, e.g. {twice[:3]}: the folds' "
                        "validation parts must be disjoint (is the fold axis a cross-validation?).")
    expected = set(cv_images)
    missing, extra = sorted(expected - set(seen)), sorted(set(seen) - expected)
    if missing or extra:
        raise DataError(f"the out-of-fold predictions miss {len(missing)} image(s) of the CV set (e.g. "
                        f"{missing[:3]}) and hold {len(extra)} outside it (e.g. {extra[:3]}): each training image "
                        f"must be held out by exactly one fold ({', '.join(p.source for p in parts)}).")
    return Predictions(images, np.concatenate([p.target for p in parts]),
                       np.concatenate([p.probabilities for p in parts]), parts[0].class_names,
                       np.concatenate([p.scored for p in parts]), "out-of-fold")


def fold_ensemble(folds: Sequence[Predictions]) -> Predictions:
    """The folds' models as an ensemble on the shared test set: per image, the mean of the folds' probabilities.

    Raises:
        DataError: the folds predict different test images, or give an image different targets.
    """
    if not folds:
        raise DataError("no fold has test predictions to average.")
    first = folds[0]
    aligned = [f.aligned_to(first.images) for f in folds]
    for fold in aligned[1:]:
        differ = np.flatnonzero(fold.target != first.target)
        if len(differ):
            raise DataError(f"'{fold.source}' and '{first.source}' give image {first.images[differ[0]]} different "
                            "targets; a fold ensemble needs the same test set.")
    return Predictions(first.images, first.target, np.mean([f.probabilities for f in aligned], axis=0),
                       first.class_names, np.logical_and.reduce([f.scored for f in aligned]), "fold ensemble")
