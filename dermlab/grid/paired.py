"""``paired_tests:`` of a grid: two rows compared cell by cell on the same test images, and Holm's correction.

An entry ``{metric: test/auc, a: {model: ARL-CNN50}, b: {model: ResNet50}}`` pairs every finished cell of ``a``
with the cell of ``b`` that has the same value on every other axis (seed, fold, task, ...), and tests the pair on
the two cells' ``predictions_test.csv`` (scored images only):

* ``test/auc`` (two classes): DeLong's test of the two correlated AUCs (DeLong et al. 1988), two-sided;
* ``test/accuracy`` / ``test/balanced_accuracy``: McNemar's test (McNemar 1947) on the predicted classes
  (P(class 1) > 0.5 for two classes, the argmax otherwise), two-sided, exact below 25 discordant pairs. It tests
  whether the two cells err equally often, i.e. their accuracy, not the class-balanced mean recall.

Each cell pair is reported on its own (no combination across seeds or folds). A pair whose cells did not finish,
lack predictions or were not tested on the same images (and targets) is listed with the reason and no p-value.
:func:`holm_adjust` then adjusts every p-value the table reports — its Student t-tests and its paired tests
together — with Holm's step-down procedure (Holm 1979), the family being the table.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pandas as pd

from dermlab.errors import DataError
from dermlab.files.predictions import Predictions
from dermlab.grid.spec import GridSpec, cli_value
from dermlab.metrics import definitions
from dermlab.stats.paired_tests import delong, holm, mcnemar

PAIRED_METRICS = ("test/auc", "test/accuracy", "test/balanced_accuracy")


class HolmTested(Protocol):
    """A test result :func:`holm_adjust` adjusts: its two-sided ``p`` (NaN: not tested) and where the adjusted
    one goes (:class:`PairedTest`, :class:`dermlab.grid.report.TTest`)."""

    p: float
    p_holm: float


@dataclass
class PairedTest:
    """One cell pair's test. ``value_a``/``value_b``: the pair's ``metric`` recomputed from the predictions by its
    one definition (:mod:`dermlab.metrics.definitions`; McNemar's test itself compares per-image correctness);
    ``statistic``: z (DeLong) or McNemar's statistic; ``p`` two-sided, NaN when not tested (``note`` says why);
    ``p_holm`` Holm-adjusted across the table."""

    metric: str
    a: dict
    b: dict
    cell_a: str
    cell_b: str
    paired_on: str
    test: str = ""
    value_a: float = math.nan
    value_b: float = math.nan
    statistic: float = math.nan
    p: float = math.nan
    detail: str = ""
    note: str = ""
    p_holm: float = field(default=math.nan)


def axis_of(spec: GridSpec, key: str) -> str | None:
    """The axis ``key`` names (its full or short name), or None."""
    if key in spec.axes:
        return key
    return {short: axis for axis, short in spec.short_names().items()}.get(key)


def check_entry(spec: GridSpec, entry: object) -> None:
    """Refuse a ``paired_tests`` entry that names a metric, axis or value the grid does not have.

    Raises:
        DataError: naming the grid file, the entry and the offending key.
    """
    where = f"grid '{spec.path}': paired_tests entry {entry}"
    if not isinstance(entry, dict) or set(entry) != {"metric", "a", "b"}:
        raise DataError(f"{where} needs exactly the keys metric, a and b (e.g. {{metric: test/auc, "
                        "a: {model: ARL-CNN50}, b: {model: ResNet50}}).")
    if entry["metric"] not in spec.metrics:
        raise DataError(f"{where}: key 'metric' names {entry['metric']!r}, which is not one of the table's metrics "
                        f"{spec.metrics}.")
    if entry["metric"] not in PAIRED_METRICS:
        raise DataError(f"{where}: key 'metric' must be one of {list(PAIRED_METRICS)} (DeLong for the AUC, "
                        f"McNemar for accuracies); got {entry['metric']!r}.")
    for side in ("a", "b"):
        if not isinstance(entry[side], dict) or not entry[side]:
            raise DataError(f"{where}: key {side!r} must map axes to values, e.g. {{model: ResNet50}}.")
        for key, value in entry[side].items():
            axis = axis_of(spec, key)
            if axis is None:
                raise DataError(f"{where}: key {side}.{key} is not an axis ({list(spec.axes)}).")
            values = [cli_value(v) for v in spec.axes[axis]]
            if cli_value(value) not in values:
                raise DataError(f"{where}: key {side}.{key} has value {value!r}, which axis {axis} does not have "
                                f"({values}).")
    if {axis_of(spec, k) for k in entry["a"]} != {axis_of(spec, k) for k in entry["b"]}:
        raise DataError(f"{where}: a and b must set the same axes (the compared ones); got {list(entry['a'])} and "
                        f"{list(entry['b'])}.")
    if all(cli_value(v) == cli_value(entry["b"][k]) for k, v in entry["a"].items() if k in entry["b"]):
        raise DataError(f"{where}: a and b select the same cells.")


def _matches(values: dict, where: dict, spec: GridSpec) -> bool:
    return all(cli_value(values[axis_of(spec, k)]) == cli_value(v) for k, v in where.items())


def paired_tests(spec: GridSpec, cells: pd.DataFrame, folder: Callable[[str], Path]) -> list[PairedTest]:
    """Every ``paired_tests`` entry's cell pairs, tested (module docstring).

    Args:
        spec: the grid.
        cells: one row per cell (not averaged over ``average_over``): ``cell``, the axes, ``status``.
        folder: cell id → its run folder (holding ``predictions_test.csv``).
    """
    results = []
    records = cells.to_dict("records")
    for entry in spec.paired_tests:
        compared = {axis_of(spec, k) for k in entry["a"]}
        others = [axis for axis in spec.axes if axis not in compared]
        for record in records:
            if not _matches(record, entry["a"], spec):
                continue
            partner = next((r for r in records if _matches(r, entry["b"], spec)
                            and all(cli_value(r[k]) == cli_value(record[k]) for k in others)), None)
            if partner is None:
                continue
            paired_on = ", ".join(f"{spec.short_names()[k]}={record[k]}" for k in others)
            result = PairedTest(entry["metric"], entry["a"], entry["b"], record["cell"], partner["cell"], paired_on)
            results.append(result)
            if record["status"] != "done" or partner["status"] != "done":
                result.note = "not both finished"
                continue
            try:
                first = Predictions.read(folder(record["cell"]) / "predictions_test.csv").kept()
                second = Predictions.read(folder(partner["cell"]) / "predictions_test.csv").kept().aligned_to(
                    first.images)
                if (first.target != second.target).any():
                    raise DataError("the two cells give some images different targets")
            except DataError as error:
                result.note = f"not tested: {error}"
                continue
            run_test(result, first, second)
    return results


def run_test(result: PairedTest, first: Predictions, second: Predictions) -> None:
    """Fill ``result`` with DeLong's (``test/auc``) or McNemar's test of two aligned predictions."""
    if result.metric == "test/auc":
        if first.probabilities.shape[1] != 2:
            result.note = "DeLong's test is for two classes; this task has more"
            return
        try:
            outcome = delong(first.target, first.probabilities[:, 1], second.probabilities[:, 1])
        except ValueError as error:
            result.note = f"not tested: {error}"
            return
        result.test, result.value_a, result.value_b = "DeLong", outcome.auc_a, outcome.auc_b
        result.statistic, result.p, result.detail = outcome.z, outcome.p, "z"
        return
    predicted_a, predicted_b = first.predicted(), second.predicted()
    outcome = mcnemar(first.target, predicted_a, predicted_b)
    result.test = "McNemar"
    value = definitions.balanced_accuracy if result.metric == "test/balanced_accuracy" else definitions.accuracy
    result.value_a = float(value(first.target, first.probabilities)[0])
    result.value_b = float(value(second.target, second.probabilities)[0])
    result.statistic, result.p = outcome.statistic, outcome.p
    result.detail = f"b={outcome.b}, c={outcome.c}, {outcome.method}"


def holm_adjust(*families: Iterable[HolmTested]) -> int:
    """Holm-adjust every non-NaN ``p`` of the given lists of results (objects with ``p`` and ``p_holm``) as one
    family, writing ``p_holm``; returns the family's size."""
    tested = [r for family in families for r in family if not math.isnan(r.p)]
    for result, adjusted in zip(tested, holm([r.p for r in tested]) if tested else [], strict=True):
        result.p_holm = adjusted
    return len(tested)
