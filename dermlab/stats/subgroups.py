"""Test metrics per subgroup of the images (sex, age band, body site, skin-tone category), each with its
stratified bootstrap interval.

Input: the per-image test predictions (``image,target,<class 1>,...,<class C>[,scored]``, the layout of
``<run>/predictions_test.csv``, :mod:`dermlab.files.predictions`: ``target`` the integer true class, one probability
column per class, ``scored`` 0 for images the official scorer leaves out) and a metadata frame indexed by image id,
one column per attribute.
Every value of an attribute is a group; a missing value (empty, NaN, ``unknown``) and an image absent from the
metadata are the group ``unknown``. One row ``all / all`` gives the whole test set for reference.

Per group: ``n`` images, ``positives`` (images of the positive class), AUC, sensitivity and specificity, each
with its 95 % stratified bootstrap percentile interval: images resampled within each true class of the group, so
every replicate keeps the group's class counts; the same draws and percentiles as
:func:`dermlab.stats.intervals.stratified_bootstrap`, with each metric computed for all replicates at once from the
rows' multiplicities (a table of 27 groups of 2,000 test images, 2,000 replicates: seconds, not minutes). What is
"positive":

* a binary task: the second class (P(positive) = its probability), predicted positive when P > ``threshold``
  (0.5, ``p > 0.5`` as ``isic-challenge-scoring``);
* a multi-class task with ``positive`` = a class name (e.g. ``MEL``): that class against the rest, by its
  probability, predicted positive when it is the argmax;
* a multi-class task with ``positive`` = ``macro`` (the default ``auto`` for more than two classes): macro
  one-vs-rest AUC over the classes that occur in the group and are not all of it, balanced accuracy (mean recall
  over the classes present) as "sensitivity" and mean one-vs-rest specificity over the same classes, at the argmax;
  ``positives`` is then empty.

A metric that needs a class the group lacks (an AUC without both classes, a sensitivity without positives, a
specificity without negatives) is ``NaN`` with the reason in ``note``. A group with fewer than :data:`FEW` images of
a class gets "interval too narrow to trust" in ``note``: the stratified bootstrap resamples within each class, so
with one positive every replicate holds that same positive (n copies of it) and the AUC interval collapses
to a point, though the group says almost nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from dermlab.errors import DataError
from dermlab.files.metadata import AGE_BAND_NAMES, UNKNOWN, group_value
from dermlab.metrics import definitions
from dermlab.stats.intervals import percentile_interval, resample_counts, stratified_resamples

METRICS = ("auc", "sensitivity", "specificity")
#: The columns of a subgroup table, in order.
COLUMNS = ("attribute", "group", "n", "positives", *(f"{m}{s}" for m in METRICS for s in ("", "_low", "_high")),
           "note")
TOO_FEW = "interval too narrow to trust"
FEW = 5  #: with fewer images of a class in a group than this, its interval is flagged in ``note``
CHUNK_VALUES = 2_000_000  # replicate × row multiplicities held at once (16 MB of float64)


def check_predictions(frame: pd.DataFrame, class_names: Sequence[str], source: str) -> None:
    """Raise :class:`~dermlab.errors.DataError` naming ``source`` unless ``frame`` is a predictions table for
    ``class_names``."""
    missing = [c for c in ("image", "target", *class_names) if c not in frame.columns]
    if missing:
        raise DataError(f"{source} lacks the column(s) {missing}; expected image,target,{','.join(class_names)}"
                        "[,scored].")
    targets = pd.to_numeric(frame["target"], errors="coerce")
    bad = ~targets.isin(range(len(class_names)))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{source} row {row + 2} ({frame['image'].iloc[row]}): target {frame['target'].iloc[row]}"
                        f" is not a class index 0..{len(class_names) - 1}.")
    values = frame[list(class_names)].to_numpy(dtype=float)
    outside = ~((values >= 0) & (values <= 1)).all(axis=1)
    if outside.any():
        row = int(np.flatnonzero(outside)[0])
        raise DataError(f"{source} row {row + 2} ({frame['image'].iloc[row]}): a probability outside [0, 1].")


def _interval(metric: Callable[[np.ndarray], np.ndarray], rows: np.ndarray, level: float) -> tuple[float, float, float]:
    """(estimate, low, high): ``metric`` (weights (B, n) → (B,) values, a function of
    :mod:`dermlab.metrics.definitions`) on the group itself and the percentile interval
    (:func:`dermlab.stats.intervals.percentile_interval`) over the replicates ``rows`` (n_boot, n), every replicate as
    row multiplicities (:func:`dermlab.stats.intervals.resample_counts`) at once."""
    n = rows.shape[1]
    low, high = percentile_interval(in_chunks(metric, rows, lambda part: resample_counts(part, n)), level)
    return float(metric(np.ones((1, n)))[0]), float(low), float(high)


def in_chunks(metric: Callable[[np.ndarray], np.ndarray], rows: np.ndarray,
              weights: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """(B,) ``metric(weights(part))`` over the (B, n) ``rows`` a few rows at a time (``CHUNK_VALUES`` values at
    once), so that B replicates of a large group never hold (B, n) float weights in memory together."""
    n_rows, n = rows.shape
    chunk = max(1, CHUNK_VALUES // n)
    return np.concatenate([metric(weights(rows[first:first + chunk])) for first in range(0, n_rows, chunk)])


def metric_functions(labels: np.ndarray, probabilities: np.ndarray, positive: int | None, threshold: float) -> dict:
    """{metric: weights → (B,) values} of one group, each the suite's one definition of that number."""
    if positive is None:
        return {"auc": lambda w: definitions.macro_auc(labels, probabilities, w),
                "sensitivity": lambda w: definitions.balanced_accuracy(labels, probabilities, w),
                "specificity": lambda w: definitions.macro_specificity(labels, probabilities, w)}
    is_positive, score = labels == positive, probabilities[:, positive]
    functions = {"auc": lambda w: definitions.binary_auc(is_positive, score, w)}
    if probabilities.shape[1] == 2:
        functions["sensitivity"] = lambda w: definitions.binary_sensitivity(is_positive, score, w, threshold)
        functions["specificity"] = lambda w: definitions.binary_specificity(is_positive, score, w, threshold)
    else:
        functions["sensitivity"] = lambda w: definitions.class_recall(labels, probabilities, w)[:, positive]
        functions["specificity"] = lambda w: definitions.class_specificity(labels, probabilities, w)[:, positive]
    return functions


def _group_row(labels: np.ndarray, probabilities: np.ndarray, positive: int | None, threshold: float,
               n_boot: int, seed: int, level: float, class_names: Sequence[str]) -> dict:
    """The metrics of one group (module docstring); ``positive`` a class index, or None for macro; the note names
    classes by ``class_names``."""
    if n_boot < 1 or not 0 < level < 1:
        raise ValueError(f"n_boot must be ≥ 1 and level in (0, 1), got {n_boot} and {level}")
    row: dict = {"n": len(labels)}
    notes = []
    if positive is None:
        present = np.unique(labels)
        row["positives"] = np.nan
        strata = labels
        usable = {"auc": len(present) > 1, "sensitivity": True, "specificity": len(present) > 1}
        if len(present) == 1:
            notes.append(f"one class only ({class_names[present[0]]}): no AUC or specificity")
        else:
            notes.append(f"macro over {len(present)} classes present")
        few = [class_names[c] for c in present if (labels == c).sum() < FEW]
        if few:
            notes.append(f"{TOO_FEW} (fewer than {FEW} images of {', '.join(few)})")
    else:
        strata = (labels == positive).astype(int)
        positives = int(strata.sum())
        row["positives"] = positives
        usable = {"auc": 0 < positives < len(labels), "sensitivity": positives > 0,
                  "specificity": positives < len(labels)}
        if positives == 0:
            notes.append("no positives: no AUC or sensitivity")
        elif positives == len(labels):
            notes.append("no negatives: no AUC or specificity")
        few = [f"{count} {name}" for count, name in ((positives, "positives"), (len(labels) - positives, "negatives"))
               if 0 < count < FEW]
        if few:
            notes.append(f"{TOO_FEW} (only {' and '.join(few)})")
    functions = metric_functions(labels, probabilities, positive, threshold)
    rows = stratified_resamples(strata, n_boot, seed)  # one set of replicates for the group's three metrics
    for name in METRICS:
        values = _interval(functions[name], rows, level) if usable[name] else (np.nan,) * 3
        row.update(dict(zip((name, f"{name}_low", f"{name}_high"), values, strict=True)))
    row["note"] = "; ".join(notes)
    return row


def positive_index(class_names: Sequence[str], positive: str = "auto") -> int | None:
    """The positive class's index: ``auto`` → 1 for two classes, None (macro) for more; ``macro`` → None; else the
    named class.

    Raises:
        ValueError: a name that is not one of ``class_names``.
    """
    if positive == "auto":
        return 1 if len(class_names) == 2 else None
    if positive == "macro":
        return None
    if positive not in class_names:
        raise ValueError(f"positive class {positive!r} is not one of {list(class_names)} (or auto / macro)")
    return list(class_names).index(positive)


def scored_predictions(predictions: pd.DataFrame, class_names: Sequence[str]
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels (N,), probabilities (N, C), image ids (N,)) of a predictions table's scored rows (``scored`` 0 left
    out).

    Raises:
        DataError: a malformed table (:func:`check_predictions`) or an image listed twice.
    """
    check_predictions(predictions, class_names, "the predictions")
    duplicated = predictions["image"][predictions["image"].duplicated()]
    if len(duplicated):
        raise DataError(f"the predictions list image {duplicated.iloc[0]} more than once; one row per image.")
    if "scored" in predictions.columns:
        predictions = predictions[pd.to_numeric(predictions["scored"]).to_numpy() != 0]
    return (predictions["target"].to_numpy(dtype=int), predictions[list(class_names)].to_numpy(dtype=float),
            predictions["image"].astype(str).to_numpy())


def subgroup_table(predictions: pd.DataFrame, metadata: pd.DataFrame, class_names: Sequence[str],
                   positive: str = "auto", threshold: float = 0.5, n_boot: int = 2000, seed: int = 0,
                   level: float = 0.95) -> pd.DataFrame:
    """One row per group of every attribute (and ``all / all`` first): :data:`COLUMNS`.

    Args:
        predictions: ``image,target,<class names...>[,scored]`` (N rows); rows with ``scored`` 0 are left out.
        metadata: indexed by image id, one column per attribute; images it lacks are ``unknown``.
        class_names: the C class names, in the order of ``target``.
        positive: ``auto``, ``macro`` or a class name (module docstring).
        threshold: P(positive) above which a binary task predicts positive.
        n_boot: replicates of each group's stratified bootstrap (≥ 1).
        seed: the bootstrap's seed, the same for every group and metric.
        level: coverage of the percentile intervals, in (0, 1).

    Raises:
        DataError: a malformed predictions table, or an image listed twice.
        ValueError: an unknown ``positive`` class, ``n_boot`` < 1 or ``level`` outside (0, 1).
    """
    labels, probabilities, ids = scored_predictions(predictions, class_names)
    index = positive_index(class_names, positive)
    rows = [{"attribute": "all", "group": "all",
             **_group_row(labels, probabilities, index, threshold, n_boot, seed, level, class_names)}]
    metadata = metadata.copy()
    metadata.index = metadata.index.astype(str)
    for attribute in metadata.columns:
        values = metadata[attribute].reindex(ids).map(group_value).to_numpy()
        for group in sorted(set(values), key=lambda g: (g == UNKNOWN, _order(attribute, g))):
            member = values == group
            rows.append({"attribute": attribute, "group": group,
                         **_group_row(labels[member], probabilities[member], index, threshold, n_boot, seed, level,
                                      class_names)})
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _order(attribute: str, group: str) -> str:
    """Age bands, ITA categories and Fitzpatrick types and groups in their natural order, other groups
    alphabetically."""
    from dermlab.files.skin_type import GROUPS, TYPES
    from dermlab.stats.skin_tone import ITA_CATEGORIES

    for names in (AGE_BAND_NAMES, ITA_CATEGORIES, TYPES, GROUPS):
        if group in names:
            return f"{names.index(group):03d}"
    return group
