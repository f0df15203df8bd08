"""The gap in a test metric between two subgroups of the test images (e.g. Fitzpatrick I–II and V–VI), with its
stratified bootstrap interval and a permutation test.

The gap is ``metric(first group) − metric(second group)`` (for skin type: lightest minus darkest, so a model that
does worse on dark skin has a positive gap), each metric the suite's one definition
(:func:`dermlab.stats.subgroups.metric_functions`: AUC, sensitivity and specificity of the positive class, or their
macro forms for a multi-class task).

* **Interval**: the images of the two groups are resampled with replacement within each (group, true class) stratum
  (:func:`dermlab.stats.intervals.stratified_resamples`), so every replicate keeps each group's class counts, and
  the interval is the percentile interval of the replicates' gaps (Efron & Tibshirani 1993, ch. 13), as the
  per-group intervals of :mod:`dermlab.stats.subgroups` are drawn.
* **Permutation test** of "the metric is the same in both groups": the group labels are shuffled among the images
  of the two groups **within each true class** (each group keeps its class counts, so an AUC stays defined), the
  gap is recomputed for each of ``n_permutations`` shuffles, and the two-sided p-value is
  ``(1 + #{|gap*| ≥ |gap|}) / (1 + n_permutations)`` (Phipson & Smyth 2010, Stat Appl Genet Mol Biol 9:39,
  doi:10.2202/1544-6115.1585: a Monte-Carlo p-value is never 0).

Draws, for a given ``seed``: the bootstrap uses ``default_rng(seed)`` as
:func:`~dermlab.stats.intervals.stratified_resamples` does; the
permutations use ``default_rng([seed, 1])``, then for each true class in sorted order ``rng.permuted`` of an
``(n_permutations, n_class)`` tile of that class's group labels along axis 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from dermlab.files.metadata import group_value
from dermlab.files.skin_type import DARKEST, GROUP, GROUPS, LIGHTEST
from dermlab.stats.intervals import percentile_interval, resample_counts, stratified_resamples
from dermlab.stats.subgroups import FEW, TOO_FEW, in_chunks, metric_functions, positive_index, scored_predictions

#: The metrics a gap is computed for.
METRICS = ("auc", "sensitivity", "specificity")


@dataclass(frozen=True)
class Gap:
    """The gap in ``metric`` between the groups ``first`` and ``second`` of ``attribute`` (module docstring):
    ``first_value − second_value`` = ``gap`` with its interval ``[low, high]`` at ``level`` and the permutation
    ``p_value``; ``n_first``, ``n_second`` images; ``note`` says why a value is NaN."""

    attribute: str
    metric: str
    first: str
    second: str
    first_value: float
    second_value: float
    gap: float
    low: float
    high: float
    p_value: float
    n_first: int
    n_second: int
    n_boot: int
    n_permutations: int
    level: float
    note: str = ""

    def to_row(self) -> dict:
        """The gap as one flat row (``skin_type_test.csv``)."""
        return asdict(self)


def permuted_membership(labels: np.ndarray, in_first: np.ndarray, n_permutations: int, seed: int) -> np.ndarray:
    """(n_permutations, n) bool: ``in_first`` shuffled within each true class of ``labels`` (the draws of the
    module docstring)."""
    rng = np.random.default_rng([seed, 1])
    shuffled = np.empty((n_permutations, len(labels)), bool)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        shuffled[:, members] = rng.permuted(np.tile(in_first[members], (n_permutations, 1)), axis=1)
    return shuffled


def group_gap(labels: ArrayLike, probabilities: ArrayLike, groups: Sequence[str], first: str, second: str,
              metric: str = "auc", positive: int | None = 1, threshold: float = 0.5, n_boot: int = 2000,
              n_permutations: int = 2000, seed: int = 0, level: float = 0.95, attribute: str = "") -> Gap:
    """The gap ``metric(first) − metric(second)`` with its interval and permutation p-value (module docstring).

    Args:
        labels: (N,) true class indices of the test images.
        probabilities: (N, C) class probabilities.
        groups: (N,) each image's group; images of neither ``first`` nor ``second`` are left out.
        first: the first group (for skin type: the lightest).
        second: the second group (for skin type: the darkest).
        metric: ``auc``, ``sensitivity`` or ``specificity`` (macro forms where ``positive`` is None).
        positive: the positive class's index, or None for the macro forms of a multi-class task
            (:func:`dermlab.stats.subgroups.positive_index`).
        threshold: P(positive) above which a binary task predicts positive.
        n_boot: bootstrap replicates (≥ 1).
        n_permutations: shuffles of the permutation test (≥ 1).
        seed: seed of both (module docstring).
        level: coverage of the interval, in (0, 1).
        attribute: the attribute's name, recorded in the result.

    Returns:
        A :class:`Gap`; NaN values (with ``note``) where a group is empty or the metric is undefined in a group
        (an AUC needs both classes, a sensitivity positives, a specificity negatives); ``note`` flags a group with
        fewer than :data:`~dermlab.stats.subgroups.FEW` images of a class, whose interval (resampled within each
        class) is too narrow to trust.

    Raises:
        ValueError: an unknown metric, ``n_boot`` or ``n_permutations`` < 1, or mismatched lengths.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if n_boot < 1 or n_permutations < 1:
        raise ValueError(f"n_boot and n_permutations must be ≥ 1, got {n_boot} and {n_permutations}")
    labels, probabilities = np.asarray(labels, int), np.asarray(probabilities, float)
    groups = np.asarray([str(g) for g in groups])
    if not len(labels) == len(probabilities) == len(groups):
        raise ValueError(f"labels ({len(labels)}), probabilities ({len(probabilities)}) and groups ({len(groups)}) "
                         "must have one entry per image")
    kept = np.isin(groups, [first, second])
    labels, probabilities, in_first = labels[kept], probabilities[kept], groups[kept] == first
    n_first, n_second = int(in_first.sum()), int((~in_first).sum())
    nan = dict(first_value=np.nan, second_value=np.nan, gap=np.nan, low=np.nan, high=np.nan, p_value=np.nan)
    base = dict(attribute=attribute, metric=metric, first=first, second=second, n_first=n_first, n_second=n_second,
                n_boot=n_boot, n_permutations=n_permutations, level=level)
    if not n_first or not n_second:
        return Gap(**base, **nan, note=f"no image of {first if not n_first else second}")
    function = metric_functions(labels, probabilities, positive, threshold)[metric]
    observed = function(np.stack([in_first, ~in_first]).astype(float))
    if np.isnan(observed).any():
        empty = " and ".join(g for g, v in zip((first, second), observed, strict=True) if np.isnan(v))
        return Gap(**base, **{**nan, "first_value": float(observed[0]), "second_value": float(observed[1])},
                   note=f"{metric} is undefined in {empty} (a class it needs is absent)")
    gap = float(observed[0] - observed[1])
    few = [f"{count} {name} in {group}" for group, member in ((first, in_first), (second, ~in_first))
           for name, count in _class_counts(labels[member], positive) if 0 < count < FEW]
    def difference(weights: np.ndarray) -> np.ndarray:  # (B, n) weights → (B,) gaps
        return function(weights * in_first) - function(weights * ~in_first)

    rows = stratified_resamples(labels * 2 + in_first, n_boot, seed)
    replicates = in_chunks(difference, rows, lambda part: resample_counts(part, len(labels)))
    low, high = percentile_interval(replicates[~np.isnan(replicates)], level)
    shuffled = permuted_membership(labels, in_first, n_permutations, seed)
    null = in_chunks(lambda member: function(member) - function(1.0 - member), shuffled,
                     lambda part: part.astype(float))
    p_value = (1 + np.count_nonzero(np.abs(null) >= abs(gap) - 1e-12)) / (1 + n_permutations)
    return Gap(**base, first_value=float(observed[0]), second_value=float(observed[1]), gap=gap, low=float(low),
               high=float(high), p_value=float(p_value),
               note=f"{TOO_FEW} (only {', '.join(few)})" if few else "")


def _class_counts(labels: np.ndarray, positive: int | None) -> list[tuple[str, int]]:
    """(name, count) of what a group's metric stratifies on: positives and negatives, or each class present."""
    if positive is not None:
        positives = int((labels == positive).sum())
        return [("positives", positives), ("negatives", len(labels) - positives)]
    return [(f"class {c}", int((labels == c).sum())) for c in np.unique(labels)]


def skin_type_gaps(predictions: pd.DataFrame, metadata: pd.DataFrame, class_names: Sequence[str],
                   positive: str = "auto", threshold: float = 0.5, n_boot: int = 2000, n_permutations: int = 2000,
                   seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """The gap between the lightest and darkest Fitzpatrick groups (:data:`~dermlab.files.skin_type.LIGHTEST`
    minus :data:`~dermlab.files.skin_type.DARKEST` of the attribute :data:`~dermlab.files.skin_type.GROUP`), one row
    per metric of :data:`METRICS` (the fields of :class:`Gap`); empty when ``metadata`` has no such column.

    Args:
        predictions: ``image,target,<class names...>[,scored]`` (:mod:`dermlab.files.predictions`).
        metadata: indexed by image id, with a ``fitzpatrick_group`` column (images it lacks are ``unknown``).
        class_names: the C class names, in the order of ``target``.
        positive: ``auto``, ``macro`` or a class name (:func:`dermlab.stats.subgroups.positive_index`).
        threshold: P(positive) above which a binary task predicts positive.
        n_boot: bootstrap replicates (≥ 1).
        n_permutations: shuffles of the permutation test (≥ 1).
        seed: seed of both (:func:`group_gap`).
        level: coverage of the interval, in (0, 1).
    """
    if GROUP not in metadata.columns:
        return pd.DataFrame(columns=list(Gap.__dataclass_fields__))
    labels, probabilities, ids = scored_predictions(predictions, class_names)
    column = metadata[GROUP].copy()
    column.index = column.index.astype(str)
    groups = column[~column.index.duplicated()].reindex(ids).map(group_value).to_numpy()
    index = positive_index(class_names, positive)
    return pd.DataFrame([group_gap(labels, probabilities, groups, LIGHTEST, DARKEST, metric, index, threshold, n_boot,
                                   n_permutations, seed, level, attribute=GROUP).to_row() for metric in METRICS])


def skin_type_score_names() -> list[str]:
    """The names :func:`skin_type_scores` gives (a grid's ``metrics`` may ask for them): ``skin_type/<metric>_<group>``
    for each Fitzpatrick group and ``skin_type/<metric>_gap`` with ``_gap_low``, ``_gap_high``, ``_gap_p``."""
    return [f"skin_type/{m}_{suffix}" for m in METRICS
            for suffix in (*GROUPS, "gap", "gap_low", "gap_high", "gap_p")]


def skin_type_scores(subgroups: pd.DataFrame, gaps: pd.DataFrame) -> dict[str, float]:
    """Every name of :func:`skin_type_score_names` → its value from a subgroup table
    (:func:`dermlab.stats.subgroups.subgroup_table`) and :func:`skin_type_gaps`; NaN where the test set lacks it."""
    scores = dict.fromkeys(skin_type_score_names(), float("nan"))
    rows = subgroups[subgroups["attribute"] == GROUP]
    for row in rows.itertuples():
        for metric in METRICS:
            if row.group in GROUPS:
                scores[f"skin_type/{metric}_{row.group}"] = float(getattr(row, metric))
    for row in gaps.itertuples():
        for suffix, field in (("gap", "gap"), ("gap_low", "low"), ("gap_high", "high"), ("gap_p", "p_value")):
            scores[f"skin_type/{row.metric}_{suffix}"] = float(getattr(row, field))
    return scores
