"""Checkpoints are checked before they are trusted (dermlab.files.checkpoints.read_checkpoint: ``--ckpt_path`` of fit,
test and predict, a grid cell's resume, ``pretrained_weights``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from dermlab.cli import main
from dermlab.commands.trainer import build_cli
from dermlab.errors import DataError
from dermlab.grid.cell import run_cell_command
from lightning_modules.nets.backbone import create_backbone
from tests.conftest import tiny_args

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def fitted(isic2017_root, tmp_path_factory) -> Path:
    """A one-epoch run folder (checkpoints/best-epoch00.ckpt and last.ckpt); copy it before damaging it."""
    run = tmp_path_factory.mktemp("fitted") / "run"
    build_cli(["fit", *tiny_args(isic2017_root, run, "--trainer.max_epochs", "1")])
    return run


@pytest.fixture
def damaged(fitted, tmp_path) -> Path:
    """A copy of the fitted run whose last.ckpt is cut to its first 100,000 bytes (a save killed midway)."""
    run = tmp_path / "run"
    shutil.copytree(fitted, run)
    last = run / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:100_000])
    return run


def error_line(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_resuming_from_a_truncated_last_ckpt_names_it_the_reason_and_the_other_checkpoints(isic2017_root, damaged,
                                                                                          capsys):
    last = damaged / "checkpoints" / "last.ckpt"
    for ckpt_path in ("last", str(last)):  # Lightning resolves "last"; a file is checked at parse time
        message = error_line(capsys, ["fit", *tiny_args(isic2017_root, damaged, "--trainer.max_epochs", "2"),
                                      "--ckpt_path", ckpt_path])
        assert message.startswith(f"dermlab: error: checkpoint '{last}' cannot be used: it is truncated or not a "
                                  "PyTorch file (100,000 bytes")
        assert f"Other checkpoints in '{last.parent}': best-epoch00.ckpt (saved " in message
        assert message.endswith("pass one of them as --ckpt_path instead.")


@pytest.mark.parametrize("verb", ["test", "predict"])
def test_test_and_predict_refuse_a_damaged_or_foreign_file(isic2017_root, damaged, verb, capsys):
    folder = damaged / "checkpoints"
    (folder / "notes.ckpt").write_text("not a checkpoint\n")
    torch.save(torch.load(folder / "best-epoch00.ckpt", weights_only=False)["state_dict"], folder / "bare.ckpt")
    torch.save({"state_dict": {}, "hyper_parameters": {"_class_path": "lightning_modules.LesionSegmenter"}},
               folder / "segmenter.ckpt")
    args = [verb, *tiny_args(isic2017_root, damaged), "--ckpt_path"]
    message = error_line(capsys, [*args, str(folder / "notes.ckpt")])
    assert "notes.ckpt' cannot be used: it is truncated or not a PyTorch file (17 bytes" in message
    assert "Damaged too: last.ckpt." in message and "best-epoch00.ckpt (saved " in message
    message = error_line(capsys, [*args, str(folder / "bare.ckpt")])
    assert "bare.ckpt' cannot be used: it is not a Lightning checkpoint (no 'state_dict'; it holds " in message
    message = error_line(capsys, [*args, str(folder / "segmenter.ckpt")])
    assert ("segmenter.ckpt' cannot be used: it is another model's: it was saved by a "
            "lightning_modules.LesionSegmenter run (LesionSegmenter), this config builds a "
            "lightning_modules.LesionClassifier (LesionClassifier)") in message


def test_a_grid_cell_does_not_resume_from_a_damaged_last_ckpt(isic2017_root, damaged):
    last = damaged / "checkpoints" / "last.ckpt"
    with pytest.raises(DataError, match=rf"checkpoint '{last}' cannot be used: it is truncated .* best-epoch00.ckpt "
                                        r"\(saved .*\); copy one of them over last.ckpt to resume from it, or "
                                        r"delete last.ckpt to start the cell over\."):
        run_cell_command([str(damaged / "result.json"), "--", *tiny_args(isic2017_root, damaged)])


def test_pretrained_weights_from_a_damaged_run_checkpoint(damaged):
    last = damaged / "checkpoints" / "last.ckpt"
    with pytest.raises(DataError, match=rf"checkpoint '{last}' cannot be used: it is truncated .*; give one of them "
                                        r"as pretrained_weights instead\."):
        create_backbone("test_resnet", 2, str(last))
