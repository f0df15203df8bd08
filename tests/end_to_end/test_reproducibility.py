"""Same seed, same numbers: identical metrics across runs (2 DataLoader workers), an exact resume, also from
asynchronous checkpoints (experiments/base/trainer/async_checkpoint.yaml), and a grid cell resumed after a kill."""

from __future__ import annotations

import lightning.pytorch as L
import pandas as pd
import pytest
import torch

from dermlab.commands.trainer import build_cli
from tests.conftest import REPO, tiny_args

pytestmark = pytest.mark.filterwarnings("ignore")


class CrashAt(L.Callback):
    """Stands in for `kill -9` in the middle of an epoch: the process state is lost, last.ckpt is the one of the
    epoch before."""

    def __init__(self, epoch: int = 1, batch: int = 1):
        self.epoch, self.batch = epoch, batch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            raise RuntimeError("simulated crash")


def run(root, folder, seed=0, *extra):
    args = tiny_args(root, folder, "--data.init_args.num_workers", "2", "--trainer.max_epochs", "3",
                     "--trainer.limit_train_batches", "3", "--seed_everything", str(seed), *extra)
    build_cli(["fit", *args])
    metrics = pd.read_csv(sorted(folder.glob("csv/version_*/metrics.csv"))[-1])
    return metrics, torch.load(folder / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]


def same_weights(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_same_seed_gives_the_same_metrics_and_another_seed_does_not(isic2017_root, tmp_path):
    first, weights = run(isic2017_root, tmp_path / "a")
    # last.ckpt holds the last epoch even when the checkpoint's monitor peaked earlier (callbacks/checkpoint.py)
    assert torch.load(tmp_path / "a" / "checkpoints" / "last.ckpt", weights_only=False)["epoch"] == 2
    again, weights_again = run(isic2017_root, tmp_path / "b")
    pd.testing.assert_frame_equal(first, again, check_exact=True)  # every logged value, to the last digit
    assert same_weights(weights, weights_again)
    in_process, weights_in_process = run(isic2017_root, tmp_path / "w0", 0, "--data.init_args.num_workers", "0")
    pd.testing.assert_frame_equal(first, in_process, check_exact=True)  # the worker count does not matter
    assert same_weights(weights, weights_in_process)
    other, weights_other = run(isic2017_root, tmp_path / "c", 1)
    assert not same_weights(weights, weights_other)
    assert not first["val/auc"].dropna().equals(other["val/auc"].dropna())


def test_a_run_crashed_mid_epoch_and_resumed_ends_as_the_uninterrupted_one(isic2017_root, tmp_path):
    uninterrupted, weights = run(isic2017_root, tmp_path / "whole")
    crash = ["--trainer.callbacks+=tests.end_to_end.test_reproducibility.CrashAt", "--trainer.callbacks.epoch", "1"]
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(isic2017_root, tmp_path / "crashed", 0, *crash)
    torch.manual_seed(1234)  # whatever the process's generators hold now must not matter
    resumed, weights_resumed = run(isic2017_root, tmp_path / "crashed", 0, "--ckpt_path", "last")
    assert same_weights(weights, weights_resumed)
    final = lambda m: m.dropna(subset=["val/auc"]).iloc[-1]  # noqa: E731
    assert final(resumed)["val/auc"] == final(uninterrupted)["val/auc"]


@pytest.mark.slow
def test_a_grid_cell_killed_mid_run_and_resumed_gives_the_same_result(tmp_path, isic2017_data_root, monkeypatch):
    """`kill -9` of a grid while its cell trains (after its first last.ckpt), then `grid run` again: the resumed
    cell's test metrics equal those of the same cell run without interruption."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import REPO
    from tests.helpers.grids import write_grid

    monkeypatch.chdir(REPO)
    grid_file = write_grid(tmp_path / "g.yaml", axes={"model.init_args.backbone": ["test_resnet"]},
                           args=["--data.init_args.image_size", "32", "--data.init_args.batch_size", "8",
                                 "--data.init_args.num_workers", "2", "--trainer.max_epochs", "4",
                                 "--trainer.accelerator", "cpu"])
    env = {**os.environ, "WANDB_MODE": "disabled"}

    def command(runs):
        return [sys.executable, "-m", "dermlab", "grid", "run", str(grid_file), "--data-root", str(isic2017_data_root),
                "--runs", str(runs)]

    cell = "grids/demo/tiny/backbone=test_resnet"
    killed = subprocess.Popen(command(tmp_path / "a"), env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    last = tmp_path / "a" / cell / "checkpoints" / "last.ckpt"
    deadline = time.time() + 240
    while not last.is_file() and time.time() < deadline and killed.poll() is None:
        time.sleep(0.2)
    time.sleep(1.0)  # into the next epoch
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    assert last.is_file() and not (tmp_path / "a" / cell / "result.json").is_file()
    for runs in (tmp_path / "a", tmp_path / "b"):  # resume the killed one; run the same cell uninterrupted
        finished = subprocess.run(command(runs), env=env, capture_output=True, text=True, timeout=400)
        assert finished.returncode == 0, finished.stdout[-2000:] + finished.stderr[-2000:]
    resumed, whole = (json.loads((tmp_path / r / cell / "result.json").read_text()) for r in ("a", "b"))
    assert resumed["resumed"] and not whole["resumed"]
    assert resumed["metrics"] == whole["metrics"]


ASYNC = ["-c", str(REPO / "experiments" / "base" / "trainer" / "async_checkpoint.yaml")]


def test_asynchronous_checkpoints_resume_a_crashed_run_to_the_uninterrupted_weights(isic2017_root, tmp_path):
    uninterrupted, weights = run(isic2017_root, tmp_path / "whole")  # synchronous saving
    crash = ["--trainer.callbacks+=tests.end_to_end.test_reproducibility.CrashAt", "--trainer.callbacks.epoch", "2"]
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(isic2017_root, tmp_path / "crashed", 0, *ASYNC, *crash)
    saved = torch.load(tmp_path / "crashed" / "checkpoints" / "last.ckpt", weights_only=False)
    assert saved["epoch"] == 1  # the background write of epoch 1 finished before the crash unwound the trainer
    resumed, weights_resumed = run(isic2017_root, tmp_path / "crashed", 0, *ASYNC, "--ckpt_path", "last")
    assert same_weights(weights, weights_resumed)
    final = lambda m: m.dropna(subset=["val/auc"]).iloc[-1]  # noqa: E731
    assert final(resumed)["val/auc"] == final(uninterrupted)["val/auc"]
