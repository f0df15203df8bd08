"""Every yaml piece under experiments/ is accepted by the CLI (parsed, not trained), alone and composed."""

from __future__ import annotations

import contextlib
import io

import pytest

from dermlab.commands.trainer import build_cli
from tests.conftest import REPO

EXPERIMENTS = REPO / "experiments"
DATA = sorted((EXPERIMENTS / "base" / "data").glob("*.yaml"))
PRESETS = sorted((EXPERIMENTS / "base" / "trainer").glob("*.yaml"))


def parses(*args: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_info:
        build_cli([*args, "--print_config"], run=False)
    assert exit_info.value.code in (0, None)
    return out.getvalue()


def test_the_pieces_are_tracked_and_present():
    assert {p.stem for p in DATA} == {"isic2016", "isic2017", "isic2018_task1", "isic2018_task2", "isic2018_task3",
                                      "isic2019", "isic2020", "isic2024", "ham10000", "vitiligo", "derm7pt",
                                      "pad_ufes20", "isic_sample", "ddi", "fitzpatrick17k"}
    assert {p.stem for p in PRESETS} == {"cpu", "gpu", "ddp_bf16", "async_checkpoint"}


@pytest.mark.parametrize("data", DATA, ids=lambda p: p.stem)
def test_data_configs_compose_with_the_demo(data):
    printed = parses("-c", str(EXPERIMENTS / "demo_synthetic.yaml"), "--data", str(data))
    assert f"class_path: datamodules.{data.read_text().split('class_path: datamodules.')[1].split()[0]}" in printed


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_hardware_presets_compose_after_an_experiment(preset):
    printed = parses("-c", str(EXPERIMENTS / "demo_synthetic.yaml"), "-c", str(preset))
    assert "max_epochs: 12" in printed  # the experiment's settings survive the preset


def test_asynchronous_checkpointing_composes_with_a_hardware_preset():
    trainer = EXPERIMENTS / "base" / "trainer"
    printed = parses("-c", str(EXPERIMENTS / "demo_synthetic.yaml"), "-c", str(trainer / "gpu.yaml"),
                     "-c", str(trainer / "async_checkpoint.yaml"))
    assert "precision: bf16-mixed" in printed and "AsyncCheckpointIO" in printed


def test_model_piece_parses():
    assert "resnet18" in parses("-c", str(EXPERIMENTS / "demo_synthetic.yaml"), "--model",
                                str(EXPERIMENTS / "base" / "model" / "classifier.yaml"))


def test_dds_configs_parse():
    printed = parses("-c", str(EXPERIMENTS / "dds" / "base.yaml"), "--data", str(EXPERIMENTS / "base" / "data" /
                                                                                "vitiligo.yaml"))
    assert "DeeplySupervisedClassifier" in printed and "lr: 2.0e-05" in printed
    dds = EXPERIMENTS / "dds"
    printed = parses("-c", str(dds / "base.yaml"), "-c", str(dds / "stage2_example.yaml"),
                     "--model.init_args.object_size", "67.19")
    assert "ISIC2016DataModule" in printed and "aux_layers: auto" in printed


GRIDS = sorted(EXPERIMENTS.glob("*/tables/*.yaml")) + [EXPERIMENTS / "dds" / "synthetic_pretrain.yaml"]


def parse_cells(path, every_cell: bool) -> int:
    """Parse the cells of grid ``path`` in both forms (synthetic stand-in and real data); with ``every_cell`` False
    only the cells that bring an axis value no parsed cell had (as ``grid run`` checks before training). The count
    of cells parsed."""
    from dermlab.grid import runner, spec

    grid = spec.load(path.relative_to(REPO))
    base = grid.run_root(REPO / "runs", False)
    seen: set[tuple[str, str]] = set()
    parsed = 0
    for cell in grid.cells():
        settings = {(k, spec.cli_value(v)) for k, v in cell.settings.items()}
        if not every_cell and settings <= seen:
            continue
        seen |= settings
        parsed += 1
        for synthetic in (True, False):
            extra = list(grid.data_args.get(grid.dataset_of(cell), []))
            args = runner.cell_args(grid, cell, base / cell.id, "data/x", extra, stand_in=synthetic)
            assert runner._parse_only(args) is None, (cell.id, synthetic)
    return parsed


@pytest.mark.parametrize("path", GRIDS, ids=lambda p: f"{p.parts[-3]}/{p.stem}")
def test_every_axis_value_of_every_paper_grid_parses(path, monkeypatch):
    """Every value of every axis, in a cell of its table, is accepted by the CLI in both forms (the fast form of
    the test below: a value fails in any cell that carries it)."""
    monkeypatch.chdir(REPO)
    assert parse_cells(path, every_cell=False) >= 1


@pytest.mark.slow  # ~3 min of parsing on two CPU cores
@pytest.mark.parametrize("path", GRIDS, ids=lambda p: f"{p.parts[-3]}/{p.stem}")
def test_every_cell_of_every_paper_grid_parses(path, monkeypatch):
    """Each cell's arguments (synthetic default and real-data form) are accepted by the CLI."""
    from dermlab.grid import spec

    monkeypatch.chdir(REPO)
    assert parse_cells(path, every_cell=True) == len(spec.load(path.relative_to(REPO)).cells())


def test_the_shared_parser_reports_a_bad_key_and_then_parses_the_next_config():
    """The grid checks reuse one parser: an error must not leak into the next parse."""
    from dermlab.commands.trainer import config_parser

    demo = ["-c", str(EXPERIMENTS / "demo_synthetic.yaml")]
    error = config_parser().check([*demo, "--model.init_args.no_such_option", "3"])
    assert error is not None and "no_such_option" in error
    assert config_parser().check([*demo, "--trainer.max_epochs", "3"]) is None
    assert config_parser().check([*demo, "--data.init_args.sampling", "sideways"]) is not None


def test_the_real_demo_config_fine_tunes_packaged_efficientnet_lite0_on_the_shipped_sample():
    printed = parses("-c", str(EXPERIMENTS / "demo.yaml"))
    for expected in ("datamodules.ISICSampleDataModule", "data_samples/isic_uda1", "tf_efficientnet_lite0",
                     "pkg:efficientnet-lite0"):
        assert expected in printed


def test_a_ham10000_experiment_composes_with_the_cross_pieces():
    printed = parses("-c", str(EXPERIMENTS / "patch" / "base.yaml"), "-c",
                     str(EXPERIMENTS / "cross_dataset" / "isic2018_test.yaml"))
    assert "HAM10000DataModule" in printed and "ISIC2018Task3DataModule" in printed
