"""experiments/base/trainer/async_checkpoint.yaml: checkpoints written in a background thread hold the same state
as synchronous ones, and a crashed run resumes from them exactly."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import REPO
from tests.test_reproducibility import run, same_weights

pytestmark = pytest.mark.filterwarnings("ignore")
ASYNC = ["-c", str(REPO / "experiments" / "base" / "trainer" / "async_checkpoint.yaml")]


def test_asynchronous_checkpoints_resume_a_crashed_run_to_the_uninterrupted_weights(isic2017_root, tmp_path):
    uninterrupted, weights = run(isic2017_root, tmp_path / "whole")  # synchronous saving
    crash = ["--trainer.callbacks+=tests.test_reproducibility.CrashAt", "--trainer.callbacks.epoch", "2"]
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(isic2017_root, tmp_path / "crashed", 0, *ASYNC, *crash)
    saved = torch.load(tmp_path / "crashed" / "checkpoints" / "last.ckpt", weights_only=False)
    assert saved["epoch"] == 1  # the background write of epoch 1 finished before the crash unwound the trainer
    resumed, weights_resumed = run(isic2017_root, tmp_path / "crashed", 0, *ASYNC, "--ckpt_path", "last")
    assert same_weights(weights, weights_resumed)
    final = lambda m: m.dropna(subset=["val/auc"]).iloc[-1]  # noqa: E731
    assert final(resumed)["val/auc"] == final(uninterrupted)["val/auc"]
