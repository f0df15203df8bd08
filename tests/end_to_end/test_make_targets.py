"""Every paper's make target, run as the docs say on synthetic twins laid out as the docs say (slow), and a
DATA_ROOT with spaces and quotes passed as one word.

``make <paper>-smoke DATA_ROOT=<twins>``: the twins are written by ``dermlab synth`` into one sub-folder per data set
(:mod:`tests.helpers.twins`), the command runs from a working folder of its own (the repository's ``experiments/``
and ``Makefile`` linked in), and every cell that ran must have read its data — and its ``test_on`` target — from
``DATA_ROOT/<folder>``. The large papers run one cell per table and data set (``FIRST=1``, and the cells those start
from); the others every cell."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from dermlab.files.data_folders import FOLDERS
from dermlab.grid import runner, spec
from tests.conftest import REPO
from tests.helpers.paths import SPACED
from tests.helpers.twins import write_data_root

# make target -> (the grid files it runs, FIRST)
TARGETS = {
    "dds": (spec.paper_tables("dds"), "1"),
    "arl": (spec.paper_tables("arl"), "1"),
    "patch": (spec.paper_tables("patch"), "1"),
    "weighting": (spec.paper_tables("weighting"), "1"),
    "isic2018": (spec.paper_tables("isic2018"), "1"),
    "isic2018-seg": ([REPO / "experiments" / "isic2018" / "tables" / "table1_segmentation.yaml"], "1"),
    "baseline": (spec.paper_tables("baseline"), "1"),
    "cross_dataset": (spec.paper_tables("cross_dataset"), None),
    "metadata": (spec.paper_tables("metadata"), "2"),  # one seed's pair: image only and image + metadata
    "external": (spec.paper_tables("external"), None),  # every cell: each table's three external test sets
}


def data_sets_read(tables: list[Path]) -> dict[str, int]:
    """The config names the tables read (their cells' data sets and ``{data:NAME}`` targets), each with the largest
    synthetic size a table's CPU stand-in was made for (a twin smaller than that may lack a class its stand-in
    batches need)."""
    names: dict[str, int] = {}
    for table in tables:
        grid = spec.load(table)
        for name in runner.data_sets_read(grid):
            names[name] = max(names.get(name, 0), int(grid.synthetic.get("n", 200)))
    return names


def roots_in(config: dict) -> list[str]:
    data = config["data"]["init_args"]
    return [data["root"]] + ([data["test_on"]["init_args"]["root"]] if data.get("test_on") else [])


@pytest.mark.slow
@pytest.mark.parametrize("target", list(TARGETS))
def test_make_paper_smoke_runs_on_twins_in_the_documented_data_root(target, tmp_path):
    tables, first = TARGETS[target]
    names = data_sets_read(tables)
    data_root = tmp_path / "data"
    for name, n in names.items():
        write_data_root(data_root, [name], n=n)
    work = tmp_path / "work"
    work.mkdir()
    for entry in ("experiments", "Makefile"):
        (work / entry).symlink_to(REPO / entry)
    command = ["make", "-s", f"{target}-smoke", f"DATA_ROOT={data_root}", f"VENV={REPO / '.venv'}"]
    command += [f"FIRST={first}"] if first else []
    env = {**os.environ, "WANDB_MODE": "disabled"}
    result = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    cells = [p.parent for p in (work / "runs" / "grids-smoke").rglob("result.json")]
    stems = {Path(t).stem for t in tables}
    on_data_root = [c for c in cells if c.parent.name in stems]
    assert on_data_root, "no cell of the paper's tables finished"
    expected = {str(data_root / FOLDERS[name].folder) for name in names}
    read = set()
    for cell in on_data_root:
        config = yaml.safe_load(next(cell.glob("csv/version_*/config.yaml")).read_text())
        for root in roots_in(config):
            assert root in expected, f"{cell.name} read {root}, not a folder of DATA_ROOT"
            read.add(root)
    assert read == expected  # every data set of the paper was read from its documented folder
    for table in stems:
        grid = spec.load(next(t for t in tables if Path(t).stem == table))
        report = work / "runs" / "grids-smoke" / grid.paper / grid.table / "report.md"
        assert report.is_file(), table
        if target == "metadata":  # one seed's pair: both rows, tested on the same images
            text = report.read_text()
            assert "| image only |" in text and "| image + metadata |" in text, text
        if target == "external":  # the three external sets, each with its per-skin-type line
            section = report.read_text().split("**Per skin type**")[1]
            assert all(f"| {name} | " in section for name in ("DDI", "Fitzpatrick17k", "PAD-UFES-20")), section


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
@pytest.mark.parametrize("target", ["arl-smoke", "cross_dataset", "dds-smoke", "isic2018-seg-smoke", "synth",
                                    "demo-synthetic"])
def test_make_targets_pass_a_data_root_with_spaces_and_quotes_as_one_word(target, tmp_path):
    data_root = tmp_path / f"{SPACED} o'clock"
    printed = subprocess.run(["make", "-n", "-s", target, f"DATA_ROOT={data_root}", "FIRST=1"], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout
    words = [shlex.split(line) for line in printed.splitlines() if "--data-root" in line or "--out" in line]
    assert words, printed
    for line in words:
        flag = next(f for f in ("--data-root", "--out") if f in line)
        assert line[line.index(flag) + 1] in (str(data_root), str(data_root / "isic2017")), line
