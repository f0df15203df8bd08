"""The parts of a grid report computed from the cells' prediction files: bootstrap intervals per cell and
pooled per row, and, on a grid with a ``fold`` axis, the out-of-fold predictions and the fold ensemble.

Cross-validation (:func:`cross_validation`): the cells that differ only in the fold axis form one
cross-validation (one per row, and per value of any other axis such as the seed). When every fold finished:

* **out-of-fold**: the folds' ``predictions_val.csv`` (each fold's held-out part, predicted by the checkpoint
  that fold selected) concatenated into ``oof_<row>.csv`` in the report folder; every image of the CV set (the
  folds' training and validation images, from each cell's ``splits/train.csv`` and ``splits/val.csv``) must be
  held out by exactly one fold, else the report stops naming the duplicated or missing images;
* **fold ensemble**: the mean of the folds' test probabilities per image (the K fold models as one ensemble on
  the shared test set), written as ``ensemble_test_<row>.csv``; skipped (with a note) where the folds test
  different images, as in the K-fold scheme whose test set is a fold.

Both are scored with the table's recomputable metrics (:mod:`dermlab.grid.statistics`) and their stratified
bootstrap interval, beside the per-fold mean ± std of the logged test metric.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from dermlab.errors import DataError
from dermlab.files.predictions import Predictions
from dermlab.grid.spec import GridSpec
from dermlab.grid.statistics import cell_interval, fold_ensemble, metric_function, out_of_fold, pooled_interval
from dermlab.stats.intervals import Interval

Folder = Callable[[str], Path]


def test_predictions(cells: pd.DataFrame, folder: Folder) -> dict[str, Predictions]:
    """Cell id → its ``predictions_test.csv``, for the finished cells that have one."""
    done = cells[cells.status == "done"].cell
    return {c: Predictions.read(folder(c) / "predictions_test.csv") for c in done
            if (folder(c) / "predictions_test.csv").is_file()}


def _scaled(interval: Interval, scale: float) -> dict:
    return {"estimate": interval.estimate * scale, "low": interval.low * scale, "high": interval.high * scale,
            "n_boot": interval.n_boot}


def intervals(spec: GridSpec, cells: pd.DataFrame, folder: Folder) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(pooled, per_cell): per row and recomputable metric the pooled interval (``estimate``, ``low``, ``high``
    in the table's scale, ``n_cells`` with predictions), and per finished cell its own interval (and ``mean``, its
    logged value). ``cells`` holds one line per cell, not averaged over ``average_over`` axes."""
    predictions = test_predictions(cells, folder)
    n_boot, seed = spec.statistics["n_boot"], spec.statistics["seed"]
    pooled, per_cell = [], []
    for row in dict.fromkeys(cells["row"]):
        members = [c for c in cells[cells.row == row].cell if c in predictions]
        for metric in spec.metrics:
            usable = [c for c in members if metric_function(metric, predictions[c].probabilities.shape[1])]
            if not usable:
                continue
            function = metric_function(metric, predictions[usable[0]].probabilities.shape[1])
            try:  # a binary AUC is undefined where a test set holds one class only: no interval then
                for cell in usable:
                    logged = cells.loc[cells.cell == cell, metric].iloc[0] if metric in cells else math.nan
                    per_cell.append({"row": row, "metric": metric, "cell": cell, "mean": float(logged) * spec.scale,
                                     **_scaled(cell_interval(predictions[cell], function, n_boot, seed),
                                               spec.scale)})
                interval = pooled_interval([predictions[c] for c in usable], function, n_boot, seed)
            except ValueError:
                continue
            pooled.append({"row": row, "metric": metric, **_scaled(interval, spec.scale), "n_cells": len(usable)})
    return pd.DataFrame(pooled), pd.DataFrame(per_cell)


def slug(text: str) -> str:
    """A file-name-safe form of a row label (``InceptV3 / Dual Attention`` → ``InceptV3-Dual-Attention``)."""
    return re.sub(r"[^A-Za-z0-9._=-]+", "-", text).strip("-")


@dataclass
class CrossValidation:
    """One cross-validation of the grid (a row, and a value of each other non-fold axis)."""

    row: str
    label: str  # the row plus the other axes' values (e.g. ``InceptV3 / GRU, seed_everything=0``)
    folds_done: int
    folds: int
    oof_file: str = ""
    ensemble_file: str = ""
    scores: list[dict] = field(default_factory=list)  # per metric: fold mean/std, oof and ensemble intervals
    note: str = ""


def cv_images(folders: list[Path]) -> list[str]:
    """The CV set: the training and validation images of the folds' ``splits/`` files, which must agree.

    Raises:
        DataError: a split file is missing, or two folds' training + validation sets differ.
    """
    sets = []
    for run in folders:
        images: set[str] = set()
        for split in ("train", "val"):
            path = run / "splits" / f"{split}.csv"
            if not path.is_file():
                raise DataError(f"'{path}' is missing: the out-of-fold check needs each fold's split files "
                                "(written by every run); re-run the cell.")
            images |= set(pd.read_csv(path, dtype={"image_id": str}).image_id)
        sets.append(images)
    for run, images in zip(folders[1:], sets[1:], strict=True):
        if images != sets[0]:
            differ = sorted(images ^ sets[0])
            raise DataError(f"the folds '{folders[0]}' and '{run}' train + validate on different images (e.g. "
                            f"{differ[:3]}): they are not folds of one cross-validation.")
    return sorted(sets[0])


def cross_validation(spec: GridSpec, cells: pd.DataFrame, folder: Folder, out: Path) -> list[CrossValidation]:
    """Out-of-fold predictions and the fold ensemble of each cross-validation of the grid (module docstring);
    writes ``oof_<row>.csv`` and ``ensemble_test_<row>.csv`` into ``out``. Empty without a fold axis."""
    fold = spec.fold_axis()
    if fold is None:
        return []
    others = [a for a in spec.axes if a != fold and a not in spec.rows]
    n_boot, seed = spec.statistics["n_boot"], spec.statistics["seed"]
    results = []
    keys = [*spec.rows, *others]
    for _, group in cells.groupby(keys, sort=False, dropna=False) if keys else [(None, cells)]:
        row = group.row.iloc[0]
        label = ", ".join([row, *(f"{spec.short_names()[a]}={group[a].iloc[0]}" for a in others)])
        name = slug(" / ".join([row, *(f"{spec.short_names()[a]}={group[a].iloc[0]}" for a in others)]))
        done = group[group.status == "done"]
        result = CrossValidation(row, label, len(done), len(group))
        results.append(result)
        if len(done) < len(group):
            result.note = f"{len(done)}/{len(group)} folds finished"
            continue
        runs = {str(v): folder(c) for v, c in zip(done[fold], done.cell, strict=True)}  # fold value → run folder
        oof = ensemble = None
        if all((run / "predictions_val.csv").is_file() for run in runs.values()):
            oof = out_of_fold({k: Predictions.read(run / "predictions_val.csv") for k, run in runs.items()},
                              cv_images(list(runs.values())))
            result.oof_file = f"oof_{name}.csv"
            oof.write(out / result.oof_file)
        else:
            result.note = "no predictions_val.csv (no out-of-fold)"
        if all((run / "predictions_test.csv").is_file() for run in runs.values()):
            try:
                ensemble = fold_ensemble([Predictions.read(run / "predictions_test.csv") for run in runs.values()])
            except DataError:
                result.note = "; ".join(filter(None, [result.note, "the folds test different images: no fold "
                                                                   "ensemble"]))
            else:
                result.ensemble_file = f"ensemble_test_{name}.csv"
                ensemble.write(out / result.ensemble_file)
        for metric in spec.metrics:
            values = done[metric].dropna().astype(float) * spec.scale if metric in done else pd.Series(dtype=float)
            score = {"metric": metric, "fold_mean": values.mean() if len(values) else math.nan,
                     "fold_std": values.std(ddof=1) if len(values) > 1 else math.nan}
            for kind, predictions in (("oof", oof), ("ensemble", ensemble)):
                function = None if predictions is None else metric_function(metric,
                                                                            predictions.probabilities.shape[1])
                if function is not None and len(set(predictions.kept().target)) > 1:
                    interval = cell_interval(predictions, function, n_boot, seed)
                    score.update({f"{kind}_{k}": v for k, v in _scaled(interval, spec.scale).items()})
            result.scores.append(score)
    return results
