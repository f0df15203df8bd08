"""2-process DDP on CPU gives the same validation metrics as one process on the same data."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from dermlab.commands.trainer import build_cli
from tests.conftest import tiny_args

DERMLAB = Path(sys.executable).parent / "dermlab"


def validate(root: Path, run: Path, checkpoint: str, *trainer_args: str) -> pd.Series:
    """``dermlab validate`` in a fresh process (DDP re-launches the command per rank)."""
    command = [str(DERMLAB), "validate", *tiny_args(root, run), "--ckpt_path", checkpoint, *trainer_args]
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = pd.read_csv(next(run.glob("csv/version_*/metrics.csv")))
    return metrics.filter(like="val/").dropna(how="all").iloc[-1]


@pytest.mark.skipif(shutil.which("dermlab") is None and not DERMLAB.exists(), reason="console script not installed")
def test_ddp_two_cpu_processes_match_one(isic2017_root, tmp_path):
    trained = build_cli(["fit", *tiny_args(isic2017_root, tmp_path / "fit", "--trainer.max_epochs", "2")])
    checkpoint = trained.trainer.checkpoint_callback.best_model_path
    single = validate(isic2017_root, tmp_path / "one", checkpoint, "--trainer.devices", "1")
    ddp = validate(isic2017_root, tmp_path / "two", checkpoint, "--trainer.devices", "2",
                   "--trainer.strategy", "ddp", "--trainer.accelerator", "cpu")
    # 8 validation images split 4 + 4: no padding duplicates, so every metric must agree.
    for name in ("val/auc", "val/accuracy", "val/sensitivity", "val/specificity", "val/average_precision"):
        assert ddp[name] == pytest.approx(single[name], abs=1e-6), name
    assert ddp["val/loss"] == pytest.approx(single["val/loss"], rel=1e-5)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("dermlab") is None and not DERMLAB.exists(), reason="console script not installed")
def test_ddp_test_run_writes_each_image_once_with_the_single_process_predictions(isic2017_root, tmp_path):
    trained = build_cli(["fit", *tiny_args(isic2017_root, tmp_path / "fit", "--trainer.max_epochs", "1")])
    checkpoint = trained.trainer.checkpoint_callback.best_model_path
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONWARNINGS": "ignore"}
    files = {}
    for devices, extra in (("1", []), ("2", ["--trainer.strategy", "ddp", "--trainer.accelerator", "cpu"])):
        run = tmp_path / f"devices{devices}"
        command = [str(DERMLAB), "test", *tiny_args(isic2017_root, run), "--ckpt_path", checkpoint,
                   "--trainer.devices", devices, *extra]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        files[devices] = pd.read_csv(run / "predictions_test.csv", dtype={"image": str}).sort_values("image")
    # 12 test images on 2 ranks: rank 0 gathers both shards and writes each image once
    assert len(files["2"]) == 12 and files["2"].image.is_unique
    assert files["2"].image.tolist() == files["1"].image.tolist()
    assert files["2"].target.tolist() == files["1"].target.tolist()
    columns = ["other", "melanoma"]
    assert abs(files["2"][columns].to_numpy() - files["1"][columns].to_numpy()).max() < 1e-6
