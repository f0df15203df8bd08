"""Deterministic train / val / test splits of a labelled image pool, as the papers use them.

Every function takes labels (and lesion ids where relevant) and a seed and returns
``{split: indices}``; the datamodule writes the result as CSV into the run folder, so a result can
be traced to its exact images. scikit-learn provides the stratified and grouped primitives.

* :func:`random_holdout` — move ``n`` random images to validation (``dds``: ISIC 2016 649/251,
  ISIC 2018 999 images moved from training to validation).
* :func:`stratified_parts` — ``patch``: four equal parts with equal class distribution; the last
  part is the held-out test set, 3-fold cross-validation on the other three (``fold`` 0–2).
* :func:`grouped_holdout` — ``weighting``: random 80/20 splits grouped by ``lesion_id`` (no lesion on
  both sides); ``fold`` 0 or 1 picks one of the two splits; 10 % of the training lesions are held out
  for checkpoint selection.
* :func:`grouped_kfold` — lesion-grouped, stratified K-fold for HAM10000 / ISIC 2018 task 3.
* :func:`kfold` — plain K-fold (``isic2018`` segmentation's 5-fold cross-validation).
"""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import GroupShuffleSplit, KFold, StratifiedGroupKFold, StratifiedKFold

from dermlab.errors import DataError

Split = dict[str, np.ndarray]


def random_holdout(n_images: int, n_val: int, seed: int) -> Split:
    if not 0 < n_val < n_images:
        raise DataError(f"cannot move {n_val} of {n_images} images to validation")
    order = np.random.default_rng(seed).permutation(n_images)
    return {"train": np.sort(order[n_val:]), "val": np.sort(order[:n_val])}


def stratified_parts(labels, fold: int, seed: int, parts: int = 4) -> Split:
    labels = np.asarray(labels)
    if not 0 <= fold < parts - 1:
        raise DataError(f"fold must be in 0..{parts - 2} (the last of {parts} parts is the test set), got {fold}")
    folds = StratifiedKFold(n_splits=parts, shuffle=True, random_state=seed)
    chunks = [test for _, test in folds.split(np.zeros(len(labels)), labels)]
    rest = chunks[:-1]
    return {"train": np.sort(np.concatenate([c for i, c in enumerate(rest) if i != fold])),
            "val": np.sort(rest[fold]), "test": np.sort(chunks[-1])}


def grouped_holdout(labels, groups, fold: int, seed: int, test_size: float = 0.2, val_size: float = 0.1) -> Split:
    groups = np.asarray(groups)
    outer = GroupShuffleSplit(n_splits=fold + 1, test_size=test_size, random_state=seed)
    train, test = list(outer.split(np.zeros(len(groups)), groups=groups))[fold]
    inner = GroupShuffleSplit(n_splits=1, test_size=val_size, random_state=seed + 1000 + fold)
    fit, val = next(inner.split(train, groups=groups[train]))
    return {"train": np.sort(train[fit]), "val": np.sort(train[val]), "test": np.sort(test)}


def grouped_kfold(labels, groups, fold: int, n_folds: int, seed: int) -> Split:
    if not 0 <= fold < n_folds:
        raise DataError(f"fold must be in 0..{n_folds - 1}, got {fold}")
    folds = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    train, held_out = list(folds.split(np.zeros(len(labels)), np.asarray(labels), np.asarray(groups)))[fold]
    return {"train": np.sort(train), "val": np.sort(held_out), "test": np.sort(held_out)}


def kfold(n_images: int, fold: int, n_folds: int, seed: int) -> Split:
    if not 0 <= fold < n_folds:
        raise DataError(f"fold must be in 0..{n_folds - 1}, got {fold}")
    train, val = list(KFold(n_splits=n_folds, shuffle=True, random_state=seed).split(np.zeros(n_images)))[fold]
    return {"train": np.sort(train), "val": np.sort(val)}
