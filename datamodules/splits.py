"""Deterministic, leakage-free train / val / test splits of a labelled image pool, as the papers use them.

Every function takes labels (and lesion ids where the pool has them) and a seed and returns
``{split: indices}``; the datamodule writes the result as CSV into the run folder and audits it
(:mod:`datamodules.audit`), so a result can be traced to its exact images. Wherever lesion (or patient)
ids are given, every split holds whole lesions: no lesion has images on two sides. scikit-learn provides
the stratified and grouped primitives.

* :func:`random_holdout` — move ``n`` random images to validation (``dds``: ISIC 2016 649/251). With
  lesion ids (``dds`` on ISIC 2018 task 3, 999 images) whole lesions move, drawn in random order until
  the count is reached; the exact count is logged (lesions of several images can make it fall short).
* :func:`stratified_parts` — ``patch``: four parts with the class distribution of the pool, lesion-grouped
  (``StratifiedGroupKFold``); the last part is the held-out test set, 3-fold cross-validation on the other
  three (``fold`` 0–2 = the validation part). The authors' published split also shares no lesion.
* :func:`grouped_holdout` — ``weighting``: random 80/20 train/test splits grouped by ``lesion_id``;
  ``fold`` 0 or 1 picks one of the two splits. The paper trains on the whole 80 % and keeps the last
  epoch, so there is no validation part unless ``val_size`` (a fraction of the training lesions) asks.
* :func:`grouped_kfold` — lesion-grouped, stratified K-fold for HAM10000 / ISIC 2018 task 3. Fold ``k``
  is the test set and fold ``k + 1 (mod K)`` the validation set: every image is tested once and validated
  once, and no checkpoint is chosen on the images it is tested on.
* :func:`kfold` — plain K-fold (``isic2018`` segmentation's 5-fold cross-validation; task 1 publishes no
  lesion ids).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike
from sklearn.model_selection import GroupShuffleSplit, KFold, StratifiedGroupKFold, StratifiedKFold

from dermlab.errors import DataError

log = logging.getLogger(__name__)
Split = dict[str, np.ndarray]
EMPTY = np.zeros(0, dtype=int)


def random_holdout(n_images: int, n_val: int, seed: int, groups: Sequence[str] | None = None) -> Split:
    """``n_val`` images to validation, the rest training; whole lesions when ``groups`` (lesion ids) are given.

    With lesions, they are visited in a seeded random order and a lesion moves when all its images still fit
    under ``n_val``; the visit stops once ``n_val`` is reached. The count reached is logged (it equals ``n_val``
    unless no remaining lesion fits).

    Args:
        n_images: the size of the pool.
        n_val: the images to move to validation, in 1 … ``n_images`` − 1.
        seed: seed of the draw.
        groups: (n_images,) the lesion id of each image; None: images move one by one.

    Returns:
        ``{"train": indices, "val": indices}``, each sorted.

    Raises:
        DataError: ``n_val`` outside 1 … ``n_images`` − 1, naming the ``val_size`` setting.
    """
    if not 0 < n_val < n_images:
        raise DataError(f"cannot move {n_val} of {n_images} training images to validation: set "
                        f"--data.init_args.val_size (val_size under data.init_args in a config) between 1 and "
                        f"{n_images - 1}")
    rng = np.random.default_rng(seed)
    if groups is None:
        order = rng.permutation(n_images)
        return {"train": np.sort(order[n_val:]), "val": np.sort(order[:n_val])}
    lesion_of = np.unique(np.asarray(groups), return_inverse=True)[1]
    sizes = np.bincount(lesion_of)
    chosen, count = np.zeros(len(sizes), bool), 0
    for lesion in rng.permutation(len(sizes)):
        if count + sizes[lesion] <= n_val:
            chosen[lesion], count = True, count + sizes[lesion]
            if count == n_val:
                break
    val = np.flatnonzero(chosen[lesion_of])
    log.info("random_holdout: %d images of %d whole lesions moved to validation (asked for %d)", len(val),
             int(chosen.sum()), n_val)
    return {"train": np.flatnonzero(~chosen[lesion_of]), "val": val}


def _stratified_chunks(labels: ArrayLike, groups: Sequence[str] | None, n_splits: int, seed: int
                       ) -> list[np.ndarray]:
    """``n_splits`` disjoint index sets with the class distribution of ``labels``; lesion-grouped if ``groups``."""
    labels = np.asarray(labels, dtype=np.int64)
    key_groups = None if groups is None else tuple(str(g) for g in groups)
    return [c.copy() for c in _chunks(labels.tobytes(), key_groups, n_splits, seed)]


@functools.lru_cache(maxsize=8)
def _chunks(labels: bytes, groups: tuple[str, ...] | None, n_splits: int, seed: int) -> tuple[np.ndarray, ...]:
    """The folds of :func:`_stratified_chunks`, memoised: StratifiedGroupKFold takes ~2 s on HAM10000 (2 cores),
    and every fold of a cross-validation (and the audit of each) draws the same partition."""
    y = np.frombuffer(labels, dtype=np.int64)
    dummy = np.zeros(len(y))
    if groups is None:
        folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed).split(dummy, y)
    else:
        folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed).split(
            dummy, y, np.asarray(groups))
    return tuple(np.sort(held_out) for _, held_out in folds)


def stratified_parts(labels: ArrayLike, fold: int, seed: int, parts: int = 4, groups: Sequence[str] | None = None
                     ) -> Split:
    """``patch``: ``parts`` stratified (and, with ``groups``, lesion-grouped) parts; test = the last part,
    validation = part ``fold``, training = the others.

    Args:
        labels: (N,) class index of each image.
        fold: the validation part, in 0 … ``parts`` − 2.
        seed: seed of the partition (the same seed gives the same parts for every ``fold``).
        parts: the number of parts.
        groups: (N,) the lesion id of each image; None: ungrouped.

    Returns:
        ``{"train": indices, "val": indices, "test": indices}``, each sorted.

    Raises:
        DataError: ``fold`` outside 0 … ``parts`` − 2.
    """
    if not 0 <= fold < parts - 1:
        raise DataError(f"fold must be in 0..{parts - 2} (the last of {parts} parts is the test set), got {fold}")
    chunks = _stratified_chunks(labels, groups, parts, seed)
    rest = chunks[:-1]
    return {"train": np.sort(np.concatenate([c for i, c in enumerate(rest) if i != fold])),
            "val": rest[fold], "test": chunks[-1]}


def grouped_holdout(labels: ArrayLike, groups: Sequence[str], fold: int, seed: int, test_size: float = 0.2,
                    val_size: float = 0.0) -> Split:
    """``weighting``: a lesion-grouped random ``1 - test_size`` / ``test_size`` train / test split (``fold``
    picks one of several draws); ``val_size`` > 0 moves that fraction of the training lesions to validation.

    Args:
        labels: (N,) class index of each image (not used: the split is not stratified).
        groups: (N,) the lesion id of each image.
        fold: which draw (0, 1, ...) of the seeded sequence of splits.
        seed: seed of the draws.
        test_size: the fraction of the lesions that tests.
        val_size: the fraction of the training lesions that validates (0: an empty ``val``).

    Returns:
        ``{"train": indices, "val": indices, "test": indices}``, each sorted.
    """
    groups = np.asarray(groups)
    outer = GroupShuffleSplit(n_splits=fold + 1, test_size=test_size, random_state=seed)
    train, test = list(outer.split(np.zeros(len(groups)), groups=groups))[fold]
    if not val_size:
        return {"train": np.sort(train), "val": EMPTY, "test": np.sort(test)}
    inner = GroupShuffleSplit(n_splits=1, test_size=val_size, random_state=seed + 1000 + fold)
    fit, val = next(inner.split(train, groups=groups[train]))
    return {"train": np.sort(train[fit]), "val": np.sort(train[val]), "test": np.sort(test)}


def grouped_kfold(labels: ArrayLike, groups: Sequence[str] | None, fold: int, n_folds: int, seed: int) -> Split:
    """Lesion-grouped stratified K-fold: test = fold ``fold``, validation = fold ``fold + 1 (mod K)``, training =
    the other K - 2 folds (so validation and test are different images).

    Args:
        labels: (N,) class index of each image.
        groups: (N,) the lesion id of each image; None: stratified K-fold of single images.
        fold: the test fold, in 0 … ``n_folds`` − 1.
        n_folds: K, at least 3.
        seed: seed of the partition (the same for every ``fold`` of one cross-validation).

    Returns:
        ``{"train": indices, "val": indices, "test": indices}``, each sorted.

    Raises:
        DataError: ``n_folds`` < 3 or ``fold`` outside 0 … ``n_folds`` − 1.
    """
    if n_folds < 3:
        raise DataError(f"n_folds must be at least 3 (one fold tests, the next validates), got {n_folds}")
    if not 0 <= fold < n_folds:
        raise DataError(f"fold must be in 0..{n_folds - 1}, got {fold}")
    chunks = _stratified_chunks(labels, groups, n_folds, seed)
    val_fold = (fold + 1) % n_folds
    train = [c for i, c in enumerate(chunks) if i not in (fold, val_fold)]
    return {"train": np.sort(np.concatenate(train)), "val": chunks[val_fold], "test": chunks[fold]}


def kfold(n_images: int, fold: int, n_folds: int, seed: int) -> Split:
    """Plain shuffled K-fold of ``n_images`` (``isic2018`` segmentation's cross-validation): validation = fold
    ``fold``, training = the rest; no test part.

    Returns:
        ``{"train": indices, "val": indices}``, each sorted.

    Raises:
        DataError: ``fold`` outside 0 … ``n_folds`` − 1.
    """
    if not 0 <= fold < n_folds:
        raise DataError(f"fold must be in 0..{n_folds - 1}, got {fold}")
    train, val = list(KFold(n_splits=n_folds, shuffle=True, random_state=seed).split(np.zeros(n_images)))[fold]
    return {"train": np.sort(train), "val": np.sort(val)}
