"""The metadata tables (experiments/metadata/tables/): image only vs image + metadata on the same split, seed and
test images. The image-only cell's ``metadata_fields: null`` gives a network without the branch (whose options,
from experiments/base/metadata.yaml, then do nothing); the other cell's network has it. The tables run on twins in
the smoke form of ``make metadata-smoke`` (tests/end_to_end/test_make_targets.py), which reads both rows in each
report."""

from __future__ import annotations

import pytest

from dermlab.grid import runner, spec
from tests.conftest import REPO

TABLES = sorted((REPO / "experiments" / "metadata" / "tables").glob("*.yaml"))


@pytest.fixture(scope="module")
def twins(tmp_path_factory):
    """``twins(name)`` → a synthetic twin of 40 images, 32 px (ISIC 2019's 5 lesion-grouped folds need 33)."""
    from datamodules.synthetic import write_synthetic

    roots = {}

    def make(name: str):
        if name not in roots:
            roots[name] = tmp_path_factory.mktemp(name)
            write_synthetic(name, roots[name], n=40, size=32, seed=0)
        return roots[name]

    return make


CELL_OWN = ("--trainer.default_root_dir", "--run.name", "--run.job_type")  # a cell's run folder and W&B names


def without(args: list[str], *options: str) -> list[str]:
    """``args`` without the given options and their values."""
    return [a for i, a in enumerate(args) if a not in options and (i == 0 or args[i - 1] not in options)]


@pytest.mark.parametrize("table", TABLES, ids=lambda p: p.stem)
def test_the_rows_differ_only_in_the_metadata_fields(table, monkeypatch):
    """Per seed, the two cells' arguments (paper settings and CPU stand-in) are the same but for
    data.init_args.metadata_fields; t-tests and paired tests compare the two rows."""
    monkeypatch.chdir(REPO)
    grid = spec.load(table.relative_to(REPO))
    assert grid.rows == ["inputs"] and list(grid.axes["inputs"]) == ["image only", "image + metadata"]
    assert len(grid.axes["seed_everything"]) >= 2 and grid.paired_tests and grid.ttests
    for seed in grid.axes["seed_everything"]:
        for stand_in in (False, True):
            only, both = (runner.cell_args(grid, c, REPO / "runs" / c.id, "data/x", [], stand_in=stand_in)
                          for c in grid.cells() if c.values["seed_everything"] == seed)
            fields = "--data.init_args.metadata_fields"
            assert only[only.index(fields) + 1] == "null"
            assert both[both.index(fields) + 1] == "[age, sex, localization]"
            assert without(only, fields, *CELL_OWN) == without(both, fields, *CELL_OWN)


@pytest.mark.parametrize("inputs", ["image only", "image + metadata"])
def test_metadata_fields_null_gives_an_image_only_network(inputs, twins, tmp_path, monkeypatch):
    """One step of the ISIC 2019 table's stand-in cell: ``metadata_fields: null`` attaches no branch (and records
    no encoding) although metadata.yaml's branch options are set; the other row's network has the branch."""
    from dermlab.commands.trainer import build_cli
    from lightning_modules.nets.metadata_branch import metadata_branch_of

    monkeypatch.chdir(REPO)
    grid = spec.load("experiments/metadata/tables/isic2019.yaml")
    cell = next(c for c in grid.cells() if c.values == {"seed_everything": 0, "inputs": inputs})
    args = runner.cell_args(grid, cell, tmp_path / cell.id, str(twins("isic2019")),
                            [str(a) for a in grid.synthetic["args"]], stand_in=True)
    cli = build_cli(["fit", *args, "--run.wandb", "disabled", "--trainer.fast_dev_run", "1",
                     "--data.init_args.batch_size", "8"])
    assert cli.model.hparams.metadata_branch["fusion"] == 1024  # the branch options are there in both rows
    branch = metadata_branch_of(cli.model.net)
    if inputs == "image only":
        assert branch is None and cli.model.hparams.get("metadata_encoding") is None
        assert cli.datamodule.metadata_encoding is None
    else:
        assert branch is not None and list(branch.fields) == ["age", "sex", "localization"]
        assert cli.model.hparams["metadata_encoding"] is not None
