"""``dermlab/grid/runner.py``: checks before training, resume after a kill, tables of another table's cells, the
smoke cells kept and the weights files a paper's settings need."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from dermlab.errors import DataError
from dermlab.grid import report as reporting
from dermlab.grid import runner, spec
from tests.conftest import REPO
from tests.helpers.grids import fabricate, write_grid


def test_first_keeps_one_cell_per_table_and_data_set_and_the_cells_they_start_from():
    grids = [spec.load(t) for t in spec.paper_tables("dds")]
    keep = runner.keep_first_cells(grids, 1, stand_in=True)
    assert {c.split("__")[0] for c in keep["table1"]} == {"dataset=isic2016", "dataset=isic2017",
                                                          "dataset=isic2018_task3", "dataset=vitiligo"}
    assert len(keep["table1"]) == 4 and len(keep["table2_ablation"]) == 2
    isic2018 = [spec.load(t) for t in spec.paper_tables("isic2018")]
    keep = runner.keep_first_cells(isic2018, 1, stand_in=True)
    # Table 2's first cell starts from a Table 1 SegAN run, which is therefore kept in Table 1 too
    assert len(keep["table2_attributes"]) == 1
    assert any("VGG-Adversarial" in c for c in keep["table1_segmentation"])
    assert {g.table: g.only for g in isic2018 if not g.cells_of} == keep


def test_the_papers_settings_stop_before_training_when_a_weights_file_is_missing(tmp_path):
    grid = spec.load(REPO / "experiments" / "patch" / "tables" / "table2_strategies.yaml")
    with pytest.raises(DataError) as error:
        runner.require_weight_files(grid, root=tmp_path)
    assert "weights/densenet121.tv_in1k.safetensors" in str(error.value) and "docs/weights.md" in str(error.value)
    for name in ("densenet121.tv_in1k", "inception_v3.tv_in1k", "seresnext50_32x4d.gluon_in1k"):
        (tmp_path / "weights").mkdir(exist_ok=True)
        (tmp_path / "weights" / f"{name}.safetensors").write_bytes(b"")
    assert runner.require_weight_files(grid, root=tmp_path)  # all there: named, no error
    dds = spec.load(REPO / "experiments" / "dds" / "tables" / "table1.yaml")  # its base.yaml names VGG13-BN's
    with pytest.raises(DataError, match="weights/vgg13_bn.tv_in1k.safetensors"):
        runner.require_weight_files(dds, root=tmp_path)


def test_unknown_config_path_and_unlogged_metric_stop_before_training(tmp_path, isic2017_root):
    bad_axis = spec.load(write_grid(tmp_path / "a.yaml", axes={"model.init_args.bakbone": ["x"]}, rows=[]))
    with pytest.raises(DataError, match="cell bakbone=x: the CLI rejects it"):
        runner.validate(bad_axis, {"isic2017": (str(isic2017_root), [])})
    bad_metric = spec.load(write_grid(tmp_path / "m.yaml", metrics=["test/auc", "test/dice"]))
    with pytest.raises(DataError, match="do not log \\['test/dice'\\]"):
        runner.validate(bad_metric, {"isic2017": (str(isic2017_root), [])})
    assert not (tmp_path / "runs").exists()


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
