"""2-process DDP on CPU gives the same validation metrics as one process on the same data."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from dermlab.cli import build_cli
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
