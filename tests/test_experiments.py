"""Every yaml piece under experiments/ is accepted by the CLI (parsed, not trained)."""

from __future__ import annotations

import contextlib
import io

import pytest

from dermlab.cli import build_cli
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
                                      "ham10000", "vitiligo", "derm7pt"}
    assert {p.stem for p in PRESETS} == {"cpu", "gpu", "ddp_bf16"}


@pytest.mark.parametrize("data", DATA, ids=lambda p: p.stem)
def test_data_configs_compose_with_the_demo(data):
    printed = parses("-c", str(EXPERIMENTS / "demo.yaml"), "--data", str(data))
    assert f"class_path: datamodules.{data.read_text().split('class_path: datamodules.')[1].split()[0]}" in printed


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_hardware_presets_compose_after_an_experiment(preset):
    printed = parses("-c", str(EXPERIMENTS / "demo.yaml"), "-c", str(preset))
    assert "max_epochs: 12" in printed  # the experiment's settings survive the preset


def test_model_piece_parses():
    assert "resnet18" in parses("-c", str(EXPERIMENTS / "demo.yaml"), "--model",
                                str(EXPERIMENTS / "base" / "model" / "classifier.yaml"))
