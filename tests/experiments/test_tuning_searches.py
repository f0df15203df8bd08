"""The shipped search files (experiments/tuning/*.yaml) load, mark the paper's values inside their ranges, and every
range's ends parse as values of their keys on the search's own configs — without building a model or reading data."""

from __future__ import annotations

from pathlib import Path

import pytest

from dermlab.commands.trainer import config_parser
from dermlab.grid import runner
from dermlab.grid.spec import cli_value
from dermlab.tuning import search
from tests.conftest import REPO

SEARCHES = sorted((REPO / "experiments" / "tuning").glob("*.yaml"))
PAPER_VALUES = {  # what each paper used (the search file's ``paper:``), checked against the papers by hand
    "weighting_focal_gamma": {"model.init_args.focal_gamma": 1.0, "model.init_args.optimizer.init_args.lr": 1.0e-5},
    "patch_learning_rate": {"model.init_args.crop_dropout": 0.1},
    "dds_learning_rate": {"model.init_args.optimizer.init_args.lr": 2.0e-5},
    "demo": {"model.init_args.optimizer.init_args.lr": 1.0e-3},
}


def test_there_is_a_demo_and_one_search_per_paper_that_tuned():
    assert {p.stem for p in SEARCHES} == set(PAPER_VALUES)


@pytest.mark.parametrize("path", SEARCHES, ids=lambda p: p.stem)
def test_a_search_file_loads_and_its_ranges_parse(path: Path, monkeypatch):
    monkeypatch.chdir(REPO)
    spec = search.load(path.relative_to(REPO))
    assert spec.metric.startswith("val/") and spec.paper_values() == PAPER_VALUES[path.stem]
    grid = spec.grid()
    args = runner.cell_args(grid, grid.cells()[0], Path("runs/tuning/x/trial"), "data/x", [], False)  # paper settings
    values = [word for entry in spec.space for value in entry.values for word in (f"--{entry.key}", cli_value(value))]
    assert config_parser().check([*args, *values]) is None  # each value is checked as the parser reads it
