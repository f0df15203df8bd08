"""One meaning of DATA_ROOT: the folder holding one sub-folder per data set, for every grid and make target.

The folder names are :mod:`dermlab.files.data_folders`; a missing sub-folder stops ``grid run`` before anything trains,
naming the folder and the download page. The slow twin of this file runs every paper's make target on twins laid
out that way (``tests/test_make_targets_on_data_root.py``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dermlab.errors import DataError
from dermlab.files.data_folders import FOLDERS, data_set_folder, require_data_set_folder
from dermlab.grid import runner, spec
from tests.conftest import REPO

TABLES = sorted((REPO / "experiments").glob("*/tables/*.yaml"))


def all_folders(root: Path) -> Path:
    for entry in FOLDERS.values():
        (root / entry.folder).mkdir(parents=True, exist_ok=True)
    return root


def test_every_config_name_has_a_folder_a_config_and_a_synthetic_twin():
    from datamodules.synthetic import WRITERS

    assert set(FOLDERS) <= set(WRITERS)
    for name in FOLDERS:
        assert (REPO / "experiments" / "base" / "data" / f"{name}.yaml").is_file(), name
    # the three ISIC 2018 tasks come in one download, so they share one folder
    assert {FOLDERS[f"isic2018_task{t}"].folder for t in (1, 2, 3)} == {"isic2018"}
    assert data_set_folder("/data", "isic2018_task3") == Path("/data/isic2018")
    with pytest.raises(DataError, match="isic_sample"):
        data_set_folder("/data", "isic_sample")  # the shipped sample is not under a data root


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


def test_a_missing_data_set_folder_names_the_folder_and_the_download_page(tmp_path):
    (tmp_path / "isic2017").mkdir()
    with pytest.raises(DataError) as error:
        require_data_set_folder(tmp_path, "ham10000")
    text = str(error.value)
    assert str(tmp_path / "ham10000") in text and "https://doi.org/10.7910/DVN/DBW86T" in text
    assert "isic2017" in text  # what is there instead
    with pytest.raises(DataError, match="does not exist"):
        require_data_set_folder(tmp_path / "nowhere", "isic2017")


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


def test_the_synthetic_writer_never_writes_into_a_real_download(tmp_path):
    from datamodules.synthetic import write_synthetic

    real = tmp_path / "isic2017"
    real.mkdir()
    (real / "ISIC-2017_Training_Part3_GroundTruth.csv").write_text("image_id,melanoma,seborrheic_keratosis\n")
    with pytest.raises(DataError, match="never writes into"):
        write_synthetic("isic2017", real, n=8, size=32)
    assert [p.name for p in real.iterdir()] == ["ISIC-2017_Training_Part3_GroundTruth.csv"]  # untouched
    twin = tmp_path / "twin"
    write_synthetic("isic2018_task1", twin, n=8, size=32)
    write_synthetic("isic2018_task3", twin, n=8, size=32)  # a synthetic folder takes the other tasks' files


def test_a_misnamed_folder_or_a_data_set_given_as_the_root_is_named_with_the_fix(tmp_path):
    (tmp_path / "a" / "HAM10000").mkdir(parents=True)
    with pytest.raises(DataError, match=r"Did you mean 'HAM10000'\? Rename it to ham10000"):
        require_data_set_folder(tmp_path / "a", "ham10000")
    own = tmp_path / "b" / "ham10000"
    (own / "HAM10000_images_part_1").mkdir(parents=True)  # the data set's own folder given as the data root
    with pytest.raises(DataError, match=rf"give its parent as the data root \(DATA_ROOT={tmp_path / 'b'}"):
        require_data_set_folder(own, "ham10000")


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
