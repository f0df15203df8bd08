"""``benchmarks/results.py``: a run on another machine adds its rows, a re-run on the same machine replaces its own
(same setting), and nothing else in the file changes. Checked by hand on a tiny file."""

from __future__ import annotations

import csv
import importlib.util
import sys

from tests.conftest import REPO

spec = importlib.util.spec_from_file_location("benchmark_results", REPO / "benchmarks" / "results.py")
results = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = results  # dataclasses look their module up there
spec.loader.exec_module(results)
Figure, record = results.Figure, results.record


def rows(path) -> list[tuple[str, str, str, str]]:
    """(machine, setting, quantity, value) of every row, in file order."""
    with path.open(newline="") as file:
        return [(r["machine"], r["setting"], r["quantity"], r["value"]) for r in csv.DictReader(file)]


def test_rows_added_for_a_new_machine_replaced_for_the_same(tmp_path):
    a = [Figure("bare", 100.0, "images/s"), Figure("fit / bare", 0.97412, "ratio", ratio_of="fit / bare images/s")]
    path = record("toy", a, setting="64 px", folder=tmp_path, machine_name="CPU A", command="python toy.py")
    assert path == tmp_path / "toy.csv"
    assert rows(path) == [("CPU A", "64 px", "bare", "100"), ("CPU A", "64 px", "fit / bare", "0.9741")]

    # another machine: its rows are added, machine A's stay
    record("toy", [Figure("bare", 250.5, "images/s")], setting="64 px", folder=tmp_path, machine_name="GPU B")
    assert rows(path) == [("CPU A", "64 px", "bare", "100"), ("CPU A", "64 px", "fit / bare", "0.9741"),
                          ("GPU B", "64 px", "bare", "250.5")]

    # another setting on machine A: added too
    record("toy", [Figure("bare", 12.0, "images/s")], setting="224 px", folder=tmp_path, machine_name="CPU A")
    assert len(rows(path)) == 4

    # machine A re-runs 64 px: its two 64 px rows are replaced in place (fewer quantities this time), all else stays
    record("toy", [Figure("bare", 90.0, "images/s")], setting="64 px", folder=tmp_path, machine_name="CPU A")
    assert rows(path) == [("CPU A", "64 px", "bare", "90"), ("GPU B", "64 px", "bare", "250.5"),
                          ("CPU A", "224 px", "bare", "12")]

    with path.open(newline="") as file:
        table = list(csv.DictReader(file))
    assert tuple(table[0]) == results.COLUMNS
    assert all(row["benchmark"] == "toy" and row["date"] and row["load_1min"] and row["command"] for row in table)


def test_a_figure_keeps_its_own_setting_and_the_environment_redirects(tmp_path, monkeypatch):
    monkeypatch.setenv("DERMLAB_BENCH_RESULTS", str(tmp_path))
    path = record("toy", [Figure("NCHW", 5.0, "images/s", setting="resnet18"), Figure("NHWC", 6.0, "images/s")],
                  setting="default", machine_name="CPU A")
    assert path == tmp_path / "toy.csv"
    assert [(s, q) for _, s, q, _ in rows(path)] == [("resnet18", "NCHW"), ("default", "NHWC")]
    assert results.machine()  # this machine's CPU model and cores, e.g. "AMD EPYC, 2 cores, AVX512"
