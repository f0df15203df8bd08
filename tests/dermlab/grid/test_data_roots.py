"""One meaning of DATA_ROOT (``dermlab/grid/data_roots.py``): the folder holding one sub-folder per data set, for
every grid; a missing sub-folder stops ``grid run`` before anything trains. The slow twin of this file runs every
paper's make target on twins laid out that way (``tests/end_to_end/test_make_targets.py``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dermlab.files.data_folders import FOLDERS
from dermlab.grid import command, runner, spec
from tests.conftest import REPO
from tests.helpers.grids import write_grid

TABLES = sorted((REPO / "experiments").glob("*/tables/*.yaml"))


def all_folders(root: Path) -> Path:
    for entry in FOLDERS.values():
        (root / entry.folder).mkdir(parents=True, exist_ok=True)
    return root


@pytest.mark.parametrize("table", TABLES, ids=lambda p: f"{p.parent.parent.name}/{p.stem}")
def test_every_grid_reads_each_data_set_from_its_folder_under_the_data_root(table, tmp_path):
    grid = spec.load(table)
    root = all_folders(tmp_path / "data")
    for cell in grid.cells():
        dataset = grid.dataset_of(cell)
        folder, _ = runner.data_root_for(grid, str(root), dataset, stand_in=False)
        assert folder == str(root / FOLDERS[dataset].folder)
        args = runner.cell_args(grid, cell, tmp_path / "runs" / cell.id, folder, [], data_root=str(root))
        assert args[args.index("--data.init_args.root") + 1] == str(root / FOLDERS[dataset].folder)
        assert not any("{data:" in a or "{synthetic:" in a for a in args), args  # every reference resolved
    assert {str(p) for p in runner.require_data_folders(grid, str(root))} >= {
        str(root / FOLDERS[grid.dataset_of(c)].folder) for c in grid.cells()}


def test_the_paper_tables_read_the_folders_the_docs_name(tmp_path):
    root = all_folders(tmp_path / "data")

    def folders(paper: str) -> set[str]:
        return {p.name for t in spec.paper_tables(paper) for p in runner.require_data_folders(spec.load(t), str(root))}

    assert folders("patch") == {"ham10000", "derm7pt"}  # Table IV is on the 7-point set
    assert folders("weighting") == {"ham10000"}
    assert folders("arl") == {"isic2017"}
    assert folders("dds") == {"isic2016", "isic2017", "isic2018", "vitiligo"}
    assert folders("isic2018") == {"isic2018"}
    assert folders("cross_dataset") == {"ham10000", "isic2018", "isic2017", "isic2019"}
    assert folders("baseline") == {"isic2017"}
    assert folders("metadata") == {"ham10000", "isic2019", "isic2020"}


def test_the_cross_grid_tests_on_the_data_roots_other_folders(tmp_path):
    grid = spec.load(REPO / "experiments" / "cross_dataset" / "tables" / "patch_ham10000.yaml")
    root = all_folders(tmp_path / "data")
    roots = {}
    for cell in grid.cells():
        args = runner.cell_args(grid, cell, tmp_path / "runs" / cell.id, str(root / "ham10000"), [],
                                data_root=str(root))
        roots[cell.values["test set"]] = args[args.index("--data.init_args.test_on") + 1]
    assert str(root / "isic2018") in roots["ISIC 2018 task 3 test"]
    assert str(root / "isic2017") in roots["ISIC 2017 test (3 classes)"]
    assert str(root / "isic2019") in roots["ISIC 2019 test fold"]
    # without a data root the same cells test on the synthetic twins of the grid's size
    synthetic = runner.resolve_data_refs(grid, "{data:isic2017}")
    assert synthetic == runner.synthetic_folder(grid, "isic2017")


def test_grid_run_stops_before_anything_trains_when_a_papers_folder_is_missing(tmp_path):
    root = tmp_path / "data"
    (root / "ham10000").mkdir(parents=True)  # Table IV's derm7pt/ is missing
    result = subprocess.run([sys.executable, "-m", "dermlab", "grid", "run", "--paper", "patch", "--smoke",
                             "--data-root", str(root), "--runs", str(tmp_path / "runs")],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    assert str(root / "derm7pt") in result.stderr and "https://derm.cs.sfu.ca" in result.stderr
    assert not (tmp_path / "runs").exists()  # nothing ran, not even the HAM10000 tables before Table IV


def test_smoke_on_a_data_root_takes_the_cpu_stand_in_and_the_given_folder(tmp_path):
    grid = spec.load(REPO / "experiments" / "patch" / "tables" / "table2_strategies.yaml")
    root = all_folders(tmp_path / "data")
    folder, stand_in = runner.data_root_for(grid, str(root), "ham10000", stand_in=True)
    _, full = runner.data_root_for(grid, str(root), "ham10000", stand_in=False)
    assert folder == str(root / "ham10000")
    assert [str(a) for a in grid.synthetic["args"]] == stand_in[len(full):len(full) + len(grid.synthetic["args"])]
    assert runner.stands_in(str(root), smoke=True) and not runner.stands_in(str(root), smoke=False)
    assert runner.stands_in(None, smoke=False)


@pytest.mark.slow  # a whole grid cell trains (~40 s on two CPU cores)
def test_grid_smoke_run_on_a_data_root_named_with_a_space_and_e(spaced_root, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    grid_file = write_grid(tmp_path / "g.yaml")
    runs = tmp_path / "runs ü"
    command.main(["run", str(grid_file), "--data-root", str(spaced_root.parent), "--smoke", "--first", "1",
                  "--runs", str(runs)])
    cells = sorted((runs / "grids-smoke" / "demo" / "tiny").glob("*/result.json"))
    assert len(cells) == 1, list(runs.rglob("*.log"))
    config = yaml.safe_load(next(cells[0].parent.glob("csv/version_*/config.yaml")).read_text())
    assert config["data"]["init_args"]["root"] == str(spaced_root)  # (a long path with spaces is folded in the yaml)
