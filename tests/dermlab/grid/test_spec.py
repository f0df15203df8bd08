"""``dermlab/grid/spec.py``: grid files, their expansion into cells, labelled axes, cell references and exclusions."""

from __future__ import annotations

from pathlib import Path

import pytest

from dermlab.errors import DataError
from dermlab.grid import runner, spec
from tests.helpers.grids import write_grid


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
