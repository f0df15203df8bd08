"""The skin-type section of a grid report: for each finished cell tested on images with Fitzpatrick labels, the
metric per Fitzpatrick group with its stratified bootstrap interval and the gap between the lightest and darkest
groups with its interval and permutation p-value.

Read from each cell's run folder: ``subgroups_test.csv`` (the ``fitzpatrick_group`` rows) and ``skin_type_test.csv``
(:func:`dermlab.stats.gaps.skin_type_gaps`), both written by :class:`callbacks.subgroups.SubgroupMetrics` after the
cell's test. Cells without them (test images without skin-type labels) are not listed; a table none of whose cells
has them gets no section.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from dermlab.files.skin_type import GROUP, GROUPS

METRIC = "auc"  #: the metric of the section (AUC; macro one-vs-rest AUC for a multi-class test)


def _value(estimate: float, low: float, high: float, scale: float = 1.0) -> str:
    """``0.812 [0.741, 0.873]`` (scale 1), ``81.2 [74.1, 87.3]`` (scale 100); ``—`` for NaN."""
    if pd.isna(estimate):
        return "—"
    digits = 3 if scale == 1 else 1
    return f"{estimate * scale:.{digits}f} [{low * scale:.{digits}f}, {high * scale:.{digits}f}]"


def skin_type_rows(cells: pd.DataFrame, run_folder: Callable[[str], Path]) -> list[dict]:
    """One record per finished cell with skin-type files: ``cell``, ``row``, per group ``n`` and the metric with its
    interval, and the gap's estimate, interval and p-value."""
    records = []
    for cell in cells[cells.status == "done"].itertuples():
        folder = run_folder(cell.cell)
        subgroups, gaps = folder / "subgroups_test.csv", folder / "skin_type_test.csv"
        if not (subgroups.is_file() and gaps.is_file()):
            continue
        table = pd.read_csv(subgroups, keep_default_na=False, na_values=[""])
        table = table[table.attribute == GROUP].set_index("group")
        gap = pd.read_csv(gaps).set_index("metric").loc[METRIC]
        record = {"cell": cell.cell, "row": cell.row, "first": gap["first"], "second": gap["second"],
                  "gap": gap.gap, "gap_low": gap.low, "gap_high": gap.high, "p": gap.p_value,
                  "note": "" if pd.isna(gap.note) else str(gap.note)}
        for group in GROUPS:
            if group in table.index:
                entry = table.loc[group]
                record[group] = (int(entry.n), entry[METRIC], entry[f"{METRIC}_low"], entry[f"{METRIC}_high"])
            else:
                record[group] = (0, float("nan"), float("nan"), float("nan"))
        records.append(record)
    return records


def skin_type_lines(cells: pd.DataFrame, run_folder: Callable[[str], Path], scale: float = 1.0) -> list[str]:
    """The Markdown section (empty when no cell has skin-type files); AUCs and gaps × ``scale`` (the table's)."""
    records = skin_type_rows(cells, run_folder)
    if not records:
        return []
    several = len({r["row"] for r in records}) < len(records)
    header = ["row", *(f"{METRIC.upper()} {g} (n)" for g in GROUPS), f"gap {GROUPS[0]} − {GROUPS[-1]}",
              "p (permutation)"]
    lines = ["", f"**Per skin type** (scale ×{scale:g}; {METRIC.upper()} per Fitzpatrick group with its 95 % "
             "stratified bootstrap interval; the gap lightest − darkest with its bootstrap interval and the "
             "two-sided permutation p-value, group labels shuffled within each class; dermlab.stats.gaps). A positive "
             "gap: the model does worse on the darkest group.", "", "| " + " | ".join(header) + " |",
             "|" + "---|" * len(header)]
    for r in records:
        groups = [f"{_value(*r[g][1:], scale)} ({r[g][0]})" for g in GROUPS]
        gap = _value(r["gap"], r["gap_low"], r["gap_high"], scale) + (f" ({r['note']})" if r["note"] else "")
        p = "—" if pd.isna(r["p"]) else f"{r['p']:.4f}"
        lines.append("| " + " | ".join([r["row"] + (f" ({r['cell']})" if several else ""), *groups, gap, p]) + " |")
    return lines
