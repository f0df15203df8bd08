"""Experiment grids: expansion, checks before training, report maths, resume after a kill, a real tiny grid."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from dermlab.errors import DataError
from dermlab.grid import report as reporting
from dermlab.grid import runner, spec
from tests.conftest import REPO

TINY = ["--data.init_args.image_size", "32", "--data.init_args.batch_size", "8", "--data.init_args.num_workers", "0",
        "--trainer.max_epochs", "1", "--model.init_args.scheduler.init_args.T_max", "1", "--run.wandb", "disabled"]


def write_grid(path: Path, **overrides) -> Path:
    grid = {"paper": "demo", "table": "tiny", "config": [str(REPO / "experiments" / "demo_synthetic.yaml")],
            "args": TINY,
            "axes": {"model.init_args.backbone": ["test_resnet"], "seed_everything": [0, 1]},
            "rows": ["model.init_args.backbone"], "metrics": ["test/auc", "test/accuracy"], "scale": 100}
    grid.update(overrides)
    path.write_text(yaml.safe_dump(grid, sort_keys=False))
    return path


def test_expansion_ids_and_rows(tmp_path):
    grid = spec.load(write_grid(tmp_path / "g.yaml", axes={"model.init_args.backbone": ["a", "b/c"],
                                                           "data.init_args.fold": [0, 1, 2]}))
    cells = grid.cells()
    assert len(cells) == 6 and cells[0].values == {"model.init_args.backbone": "a", "data.init_args.fold": 0}
    assert [c.id for c in cells[:2]] == ["backbone=a__fold=0", "backbone=a__fold=1"]
    assert cells[3].id == "backbone=b-c__fold=0" and cells[3].row(grid.rows) == "b/c"


@pytest.mark.parametrize("change,message", [
    ({"colour": "red"}, "unknown key\\(s\\) \\['colour'\\]"),
    ({"rows": ["model.init_args.depth"]}, "rows \\['model.init_args.depth'\\] are not axes"),
    ({"paper_values": {"resnet": {"test/auc": 1}}}, "paper_values rows \\['resnet'\\] match no row"),
    ({"config": ["experiments/nope.yaml"]}, "base config 'experiments/nope.yaml' does not exist"),
])
def test_bad_grid_files(tmp_path, change, message):
    with pytest.raises(DataError, match=message):
        spec.load(write_grid(tmp_path / "g.yaml", **change))


def test_unknown_config_path_and_unlogged_metric_stop_before_training(tmp_path, isic2017_root):
    bad_axis = spec.load(write_grid(tmp_path / "a.yaml", axes={"model.init_args.bakbone": ["x"]}, rows=[]))
    with pytest.raises(DataError, match="cell bakbone=x: the CLI rejects it"):
        runner.validate(bad_axis, {"isic2017": (str(isic2017_root), [])})
    bad_metric = spec.load(write_grid(tmp_path / "m.yaml", metrics=["test/auc", "test/dice"]))
    with pytest.raises(DataError, match="do not log \\['test/dice'\\]"):
        runner.validate(bad_metric, {"isic2017": (str(isic2017_root), [])})
    assert not (tmp_path / "runs").exists()


def fabricate(grid, runs, values):
    """Finished cells with known metrics: values[cell id] = auc, or None for a crash."""
    for cell in grid.cells():
        folder = grid.run_root(runs, False) / cell.id
        folder.mkdir(parents=True)
        if values[cell.id] is None:
            (folder / "failed.json").write_text(json.dumps({"returncode": 1, "log": str(folder / "cell.log")}))
        else:
            (folder / "result.json").write_text(json.dumps({"metrics": {"test/auc": values[cell.id],
                                                                        "test/accuracy": 0.5}}))


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


def test_tiny_grid_resumes_after_being_killed(tmp_path, isic2017_data_root, monkeypatch):
    monkeypatch.chdir(REPO)
    grid_file = write_grid(tmp_path / "g.yaml")
    command = [sys.executable, "-m", "dermlab", "grid", "run", str(grid_file), "--data-root", str(isic2017_data_root),
               "--runs", str(tmp_path / "runs")]
    env = {**os.environ, "WANDB_MODE": "disabled"}
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    cells = tmp_path / "runs" / "grids" / "demo" / "tiny"
    done_first = cells / "backbone=test_resnet__seed_everything=0" / "result.json"
    deadline = time.time() + 240
    while not done_first.is_file() and time.time() < deadline and first.poll() is None:
        time.sleep(0.5)
    os.killpg(first.pid, signal.SIGKILL)  # kill the grid and its running cell after the first cell finished
    first.wait()
    assert done_first.is_file()
    stamp = done_first.stat().st_mtime_ns
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]
    assert "seed_everything=0: finished earlier, skipped" in second.stdout
    assert done_first.stat().st_mtime_ns == stamp
    assert (cells / "backbone=test_resnet__seed_everything=1" / "result.json").is_file()
    assert "| test_resnet |" in (cells / "report.md").read_text()


def test_labelled_axes_dataset_axis_cell_references_and_replacements(tmp_path):
    """Labels name rows and ids; a mapping sets several keys; @cell(...) names a sibling; replace acts on synthetic."""
    path = write_grid(tmp_path / "g.yaml", args=["--model.init_args.object_size", "@cell(ds=none)"],
                      axes={"dataset": ["isic2016", "vitiligo"],
                            "ds": {"none": {"model.init_args.aux_layers": None},
                                   "L24 TL": {"model.init_args.aux_layers": ["L24"],
                                              "model.init_args.pretrained_weights": "weights/v.safetensors"}}},
                      rows=["dataset", "ds"], data_args={"isic2016": ["--data.init_args.val_size", "251"]},
                      synthetic={"replace": {"weights/v.safetensors": "{grids}/dds/pre/cell"},
                                 "data_args": {"isic2016": ["--data.init_args.val_size", "5"]}})
    grid = spec.load(path)
    cells = grid.cells()
    assert [c.id for c in cells] == ["dataset=isic2016__ds=none", "dataset=isic2016__ds=L24-TL",
                                     "dataset=vitiligo__ds=none", "dataset=vitiligo__ds=L24-TL"]
    assert cells[1].row(grid.rows) == "isic2016 / L24 TL" and cells[1].values["ds"] == "L24 TL"
    run_dir = Path("runs/grids/demo/tiny") / cells[1].id
    (tmp_path / "data" / "isic2016").mkdir(parents=True)
    root, extra = runner.data_root_for(grid, str(tmp_path / "data"), "isic2016")
    assert root == str(tmp_path / "data" / "isic2016") and extra == ["--data.init_args.val_size", "251"]
    args = runner.cell_args(grid, cells[1], run_dir, root, extra)
    assert args[args.index("--data") + 1] == "experiments/base/data/isic2016.yaml"
    assert args[args.index("--model.init_args.aux_layers") + 1] == "[L24]"
    assert args[args.index("--model.init_args.pretrained_weights") + 1] == "weights/v.safetensors"  # real data
    assert args[args.index("--model.init_args.object_size") + 1] == str(run_dir.parent / "dataset=isic2016__ds=none")
    assert args.index("--data") < args.index("--data.init_args.val_size") < args.index("--data.init_args.root")
    assert runner.depends_on(grid, cells[1], args, run_dir) == {"dataset=isic2016__ds=none"}
    synthetic = runner.cell_args(grid, cells[1], run_dir, "data/synthetic/isic2016", [], stand_in=True)
    assert synthetic[synthetic.index("--model.init_args.pretrained_weights") + 1] == "runs/grids/dds/pre/cell"
    first = runner.cell_args(grid, cells[0], Path("runs/grids/demo/tiny") / cells[0].id, root, extra)
    assert runner.depends_on(grid, cells[0], first, Path("runs/grids/demo/tiny") / cells[0].id) == set()
    with pytest.raises(DataError, match="not an axis"):
        grid.referenced(cells[0], "@cell(colour=red)")


def test_a_table_rendered_from_another_tables_cells(tmp_path):
    runs = tmp_path / "runs"
    source = spec.load(write_grid(tmp_path / "a.yaml"))
    fabricate(source, runs, {"backbone=test_resnet__seed_everything=0": 0.5,
                             "backbone=test_resnet__seed_everything=1": 0.7})
    view = spec.load(write_grid(tmp_path / "b.yaml", table="view", cells_of="tiny",
                                metrics=["test/auc", "test/balanced_accuracy"]))
    assert runner.run(view, runs=runs) == {}  # nothing of its own to run
    text = reporting.report(view, runs)
    assert "| test_resnet | 60.00 ± 14.14 | — | — | n/a |" in text
    assert (runs / "grids" / "demo" / "view" / "report.md").is_file()


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


def test_exclude_references_inside_a_list_and_synthetic_settings(tmp_path):
    """``exclude`` drops combinations; @cell(...) inside a list value names several siblings (an ensemble's
    members) and makes the cell wait for them; ``synthetic.settings`` adds per-label arguments last."""
    members = "[@cell(variant=A, seed_everything=0), @cell(variant=A, seed_everything=1)]"
    path = write_grid(tmp_path / "g.yaml",
                      axes={"variant": {"A": {"model.init_args.drop_rate": 0.1},
                                        "E": {"model.init_args.pretrained_weights": members}},
                            "seed_everything": [0, 1]},
                      rows=["variant"], exclude=[{"variant": "E", "seed_everything": [1]}],
                      synthetic={"settings": {"variant": {"A": {"model.init_args.drop_rate": 0.5}}}})
    grid = spec.load(path)
    assert [c.id for c in grid.cells()] == ["variant=A__seed_everything=0", "variant=A__seed_everything=1",
                                            "variant=E__seed_everything=0"]
    ensemble = grid.cells()[2]
    run_dir = Path("runs/grids/demo/tiny") / ensemble.id
    args = runner.cell_args(grid, ensemble, run_dir, "data/x", [])
    a0, a1 = (str(run_dir.parent / f"variant=A__seed_everything={s}") for s in (0, 1))
    assert args[args.index("--model.init_args.pretrained_weights") + 1] == f"[{a0}, {a1}]"
    assert runner.depends_on(grid, ensemble, args, run_dir) == {"variant=A__seed_everything=0",
                                                                 "variant=A__seed_everything=1"}
    first = grid.cells()[0]
    real = runner.cell_args(grid, first, run_dir.parent / first.id, "data/x", [])
    synthetic = runner.cell_args(grid, first, run_dir.parent / first.id, "data/x", [], stand_in=True)
    assert real[real.index("--model.init_args.drop_rate") + 1] == "0.1"
    assert synthetic[-2:] == ["--model.init_args.drop_rate", "0.5"]  # after the cell's own 0.1: it wins
    with pytest.raises(DataError, match="exclude"):
        spec.load(write_grid(tmp_path / "bad.yaml", exclude=[{"colour": "red"}]))


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
