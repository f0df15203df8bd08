"""``dermlab/grid/skin_type_report.py``: the per-skin-type section of a grid report, on fabricated cells whose run
folders hold the files ``callbacks.SubgroupMetrics`` writes, computed here from hand-made predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dermlab.grid import report as reporting
from dermlab.grid import spec
from dermlab.stats.gaps import skin_type_gaps, skin_type_scores
from dermlab.stats.subgroups import subgroup_table
from tests.helpers.grids import fabricate, write_grid


def _skin_type_files(folder, seed: int) -> dict[str, float]:
    """A binary test set of 90 images in the three Fitzpatrick groups: its subgroup table and gaps in ``folder``;
    returns the grid scores of those files."""
    rng = np.random.default_rng(seed)
    labels = np.tile([0, 1], 45)
    groups = np.repeat(["I-II", "III-IV", "V-VI"], 30)
    score = np.clip(0.5 + (labels - 0.5) * np.where(groups == "V-VI", 0.1, 0.6) + rng.normal(0, 0.15, 90), 0, 1)
    ids = [f"img{i}" for i in range(90)]
    predictions = pd.DataFrame({"image": ids, "target": labels, "benign": 1 - score, "malignant": score})
    metadata = pd.DataFrame({"fitzpatrick_group": groups}, index=ids)
    table = subgroup_table(predictions, metadata, ("benign", "malignant"), n_boot=100)
    gaps = skin_type_gaps(predictions, metadata, ("benign", "malignant"), n_boot=100, n_permutations=200)
    table.to_csv(folder / "subgroups_test.csv", index=False)
    gaps.to_csv(folder / "skin_type_test.csv", index=False)
    return skin_type_scores(table, gaps)


def test_report_adds_per_group_aucs_and_the_gap_of_each_cell_with_skin_types(tmp_path):
    grid = spec.load(write_grid(tmp_path / "g.yaml", axes={"model.init_args.backbone": ["a", "b"]},
                                rows=["model.init_args.backbone"]))
    fabricate(grid, tmp_path / "runs", {c.id: 0.8 for c in grid.cells()})
    first = grid.run_root(tmp_path / "runs", False) / grid.cells()[0].id
    scores = _skin_type_files(first, seed=0)
    text = reporting.report(grid, tmp_path / "runs")
    section = text[text.index("**Per skin type**"):]
    line = next(row for row in section.splitlines() if row.startswith("| a |"))
    auc_light, auc_dark = scores["skin_type/auc_I-II"], scores["skin_type/auc_V-VI"]
    # the table's scale (×100) and one decimal, as its main table
    assert f"{100 * auc_light:.1f} [" in line and "(30)" in line and f"{100 * auc_dark:.1f} [" in line
    assert f"{100 * scores['skin_type/auc_gap']:.1f} [{100 * scores['skin_type/auc_gap_low']:.1f}, " in line
    assert line.rstrip(" |").endswith(f"{scores['skin_type/auc_gap_p']:.4f}")
    assert scores["skin_type/auc_gap"] == pytest.approx(auc_light - auc_dark) and scores["skin_type/auc_gap"] > 0.2
    assert not any(row.startswith("| b |") for row in section.splitlines())  # no skin-type files: not listed


def test_no_section_without_skin_type_files(tmp_path):
    grid = spec.load(write_grid(tmp_path / "g.yaml"))
    fabricate(grid, tmp_path / "runs", {c.id: 0.8 for c in grid.cells()})
    assert "Per skin type" not in reporting.report(grid, tmp_path / "runs")


def test_scores_are_nan_where_the_test_images_have_no_skin_type():
    predictions = pd.DataFrame({"image": ["a", "b"], "target": [0, 1], "benign": [0.7, 0.2], "malignant": [0.3, 0.8]})
    metadata = pd.DataFrame({"sex": ["male", "female"]}, index=["a", "b"])
    gaps = skin_type_gaps(predictions, metadata, ("benign", "malignant"))
    scores = skin_type_scores(subgroup_table(predictions, metadata, ("benign", "malignant"), n_boot=10), gaps)
    assert gaps.empty and len(scores) == 21 and all(np.isnan(v) for v in scores.values())
