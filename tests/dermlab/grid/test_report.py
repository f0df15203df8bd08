"""``dermlab/grid/report.py``: grid reports checked by hand on fabricated cells."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from datamodules.taxonomies import TAXONOMIES, mapping_between
from dermlab.grid import report as reporting
from dermlab.grid import spec
from tests.conftest import REPO
from tests.helpers.cross_dataset import EXPERIMENTS, HAM
from tests.helpers.grids import fabricate, write_grid


def test_report_by_hand_on_fabricated_runs(tmp_path):
    grid = spec.load(write_grid(tmp_path / "g.yaml", axes={"model.init_args.backbone": ["a", "b"],
                                                           "seed_everything": [0, 1, 2]},
                                paper_values={"a": {"test/auc": 90.0}},
                                ttests=[{"metric": "test/auc", "greater": {"model.init_args.backbone": "a"},
                                         "than": {"model.init_args.backbone": "b"}}]))
    values = {c.id: v for c, v in zip(grid.cells(), [0.91, 0.92, 0.93, 0.90, 0.91, 0.92], strict=True)}
    fabricate(grid, tmp_path / "runs", values)
    text = reporting.report(grid, tmp_path / "runs")
    summary = reporting.summarise(grid, reporting.collect(grid, tmp_path / "runs"))
    a = summary[(summary.row == "a") & (summary.metric == "test/auc")].iloc[0]
    assert a["mean"] == pytest.approx(92.0) and a["std"] == pytest.approx(1.0) and a["diff"] == pytest.approx(2.0)
    # 3 vs 3: means 92 and 91, both sample variances 1 → pooled s² = 1, t = 1 / sqrt(2/3) = sqrt(1.5), df = 4
    test = reporting.ttests(grid, reporting.collect(grid, tmp_path / "runs"))[0]
    assert test.t == pytest.approx(math.sqrt(1.5)) and test.df == 4
    # p = P(T_4 > t), integrating the Student-t density with 4 degrees of freedom by hand: (3/8)(1 + x²/4)^(-5/2)
    x = np.linspace(test.t, 400, 2_000_001)
    assert test.p == pytest.approx(np.trapezoid(0.375 * (1 + x**2 / 4) ** -2.5, x), abs=1e-6)
    assert "| a | 92.00 ± 1.00 | 90.00 | 2.00 |" in text
    assert (tmp_path / "runs" / "grids" / "demo" / "tiny" / "report.csv").is_file()


def test_failed_cells_are_missing_not_zero(tmp_path):
    grid = spec.load(write_grid(tmp_path / "g.yaml", axes={"model.init_args.backbone": ["a", "b"],
                                                           "seed_everything": [0, 1]}))
    ids = [c.id for c in grid.cells()]
    fabricate(grid, tmp_path / "runs", {ids[0]: 0.8, ids[1]: None, ids[2]: None, ids[3]: None})
    text = reporting.report(grid, tmp_path / "runs")
    assert "| a | 80.00 (1/2) |" in text and "| b | missing |" in text
    assert f"- {ids[1]}: failed (log: " in text and "cell.log" in text


def test_average_over_an_axis_before_mean_std_and_ttest(tmp_path):
    """arl Table VII: per seed, the average AUC over the two tasks; then mean ± std and the t-test over seeds."""
    grid = spec.load(write_grid(tmp_path / "g.yaml", axes={"model.init_args.backbone": ["a", "b"],
                                                           "data.init_args.task": ["m", "s"],
                                                           "seed_everything": [0, 1]},
                                rows=["model.init_args.backbone"], average_over=["data.init_args.task"],
                                metrics=["test/auc"], scale=1,
                                ttests=[{"metric": "test/auc", "greater": {"model.init_args.backbone": "b"},
                                         "than": {"model.init_args.backbone": "a"}}]))
    auc = {("a", "m", 0): 0.80, ("a", "s", 0): 0.90, ("a", "m", 1): 0.82, ("a", "s", 1): 0.94,
           ("b", "m", 0): 0.86, ("b", "s", 0): 0.96, ("b", "m", 1): 0.88, ("b", "s", 1): 0.98}
    fabricate(grid, tmp_path / "runs", {f"backbone={b}__task={t}__seed_everything={s}": v
                                        for (b, t, s), v in auc.items()})
    cells = reporting.collect(grid, tmp_path / "runs")
    assert len(cells) == 4 and sorted(cells["test/auc"].round(6)) == [0.85, 0.88, 0.91, 0.93]
    summary = reporting.summarise(grid, cells).set_index("row")
    assert summary.loc["a", "mean"] == pytest.approx(0.865) and summary.loc["a", "std"] == pytest.approx(
        math.sqrt(2 * 0.015 ** 2))
    (test,) = reporting.ttests(grid, cells)
    expected = runner_free_t([0.91, 0.93], [0.85, 0.88])
    assert (test.t, test.df) == (pytest.approx(expected), 2)


def runner_free_t(x, y):
    """Student's pooled two-sample t by hand."""
    mx, my = np.mean(x), np.mean(y)
    pooled = (np.sum((np.array(x) - mx) ** 2) + np.sum((np.array(y) - my) ** 2)) / (len(x) + len(y) - 2)
    return (mx - my) / math.sqrt(pooled * (1 / len(x) + 1 / len(y)))


def test_report_names_cells_whose_split_audit_found_a_leak(tmp_path):
    """A cell run with `leakage: warn` on a leaky protocol is in the table, and the table says so."""
    grid = spec.load(write_grid(tmp_path / "g.yaml", axes={"model.init_args.backbone": ["a", "b"]}))
    ids = [c.id for c in grid.cells()]
    fabricate(grid, tmp_path / "runs", {ids[0]: 0.8, ids[1]: 0.7})
    leaky = grid.run_root(tmp_path / "runs", False) / ids[1] / "result.json"
    result = json.loads(leaky.read_text())
    result["split_audit"] = {"leak": True, "leaks": ["12 lesion id(s) shared by train/test (e.g. HAM_0000118)"]}
    leaky.write_text(json.dumps(result))
    text = reporting.report(grid, tmp_path / "runs")
    assert "**Leakage:**" in text and f"- {ids[1]}: 12 lesion id(s) shared by train/test" in text
    assert f"- {ids[0]}" not in text.split("**Leakage:**")[1]


TESTED_TABLES = [p for p in sorted((REPO / "experiments").glob("*/tables/*.yaml"))
                 if any(line.startswith(("ttests:", "paired_tests:")) for line in p.read_text().splitlines())]


@pytest.mark.parametrize("table", [*TESTED_TABLES, REPO / "experiments" / "baseline" / "tables" / "backbone_seed.yaml"],
                         ids=lambda p: f"{p.parent.parent.name}/{p.stem}")
def test_a_paper_table_renders_before_any_cell_has_finished(table, tmp_path):
    """``dermlab grid report`` right after the docs' ``make <paper>`` line, before a cell finished: every row is
    missing, the t-tests and paired tests have no values, and nothing raises (a KeyError on the t-tests' metric
    before). The tables with t-tests or paired tests, and one without."""
    grid = spec.load(table)
    text = reporting.report(grid, tmp_path / "runs")
    assert grid.title in text and "missing" in text


def test_the_report_names_each_rows_test_set(tmp_path):
    from dermlab.grid import report as reporting
    from dermlab.grid import spec

    grid = spec.load(EXPERIMENTS / "cross_dataset" / "tables" / "patch_ham10000.yaml")
    mapping = mapping_between(HAM, TAXONOMIES["isic2017_three_class"])
    for cell, auc in zip(grid.cells(), (0.9, 0.8, 0.7, 0.6), strict=True):
        folder = grid.run_root(tmp_path, False) / cell.id
        folder.mkdir(parents=True)
        cross = None if cell.settings["test set"]["data.init_args.test_on"] is None else {
            "data_module": "ISIC2017DataModule", "root": "data/isic2017", "mapping": mapping.to_json(),
            "images": 600, "left_out": {}, "dropped": {"images": 0}}
        (folder / "result.json").write_text(json.dumps({"metrics": {"test/auc": auc}, "test_on": cross}))
    text = reporting.report(grid, tmp_path)
    assert "**Test sets:**" in text and "- HAM10000 test part: its own test split" in text
    assert ("- ISIC 2017 test (3 classes): ISIC2017DataModule test split at 'data/isic2017' (600 images; classes "
            "isic2018 → isic2017_three_class: nevus, melanoma, seborrheic_keratosis)") in text
