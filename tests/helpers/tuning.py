"""A fake objective whose best value is known, a data module that records which splits it sets up, and a search file
around them on the tiny ISIC 2017 twin (tests/dermlab/tuning)."""

from __future__ import annotations

import time
from pathlib import Path

import lightning.pytorch as L
import torch
import yaml

from datamodules import ISIC2017DataModule
from tests.conftest import REPO

#: Only a checkpoint callback on the fake objective (the suite's default callbacks expect a classifier).
CALLBACKS = ("[{class_path: callbacks.ModelCheckpoint, init_args: {monitor: val/score, mode: max, save_last: true}}, "
             "{class_path: callbacks.StopOnNonFinite}]")
DIVERGES = 13.0  # the x at which the fake objective's training loss is NaN


class QuadraticObjective(L.LightningModule):
    """Logs ``val/score = -(x - best)² - 1 / (epoch + 1)`` at every validation: the best ``x`` is ``best`` whatever
    the data, and the score rises by epoch (so the best epoch is the last). At ``x == DIVERGES`` the training loss is
    NaN (a diverging run). ``sleep_s`` per training step makes a trial last long enough to be killed."""

    def __init__(self, x: float = 0.0, best: float = 3.0, sleep_s: float = 0.0, num_classes: int = 2,
                 class_names: list[str] | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        time.sleep(self.hparams.sleep_s)
        loss = (self.weight - 1).pow(2).sum()
        return loss * float("nan") if self.hparams.x == DIVERGES else loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        score = -(self.hparams.x - self.hparams.best) ** 2 - 1 / (self.current_epoch + 1)
        self.log("val/score", float(score), batch_size=len(batch["image"]))

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self.log("test/score", float(-(self.hparams.x - self.hparams.best) ** 2), batch_size=len(batch["image"]))

    def logged_metric_names(self) -> list[str]:
        return ["val/score", "test/score"]

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


class StageRecordingISIC2017(ISIC2017DataModule):
    """ISIC 2017 that appends every ``setup`` stage and every dataloader it builds to ``stages_file``."""

    def __init__(self, *args, stages_file: str = "", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.stages_file = stages_file

    def _note(self, what: str) -> None:
        if self.stages_file:
            with Path(self.stages_file).open("a") as out:
                out.write(what + "\n")

    def setup(self, stage: str | None = None) -> None:
        self._note(f"setup:{getattr(stage, 'value', stage)}")
        super().setup(stage)

    def test_dataloader(self):
        self._note("test_dataloader")
        return super().test_dataloader()


def write_search(path: Path, stages_file: Path | None = None, extra_args: list[str] = (), **overrides) -> Path:
    """A search file: the fake objective on the tiny twin, two epochs of two steps, its ``x`` searched."""
    args = ["--model", "tests.helpers.tuning.QuadraticObjective", "--trainer.callbacks", CALLBACKS,
            "--data.init_args.image_size", "32", "--data.init_args.batch_size", "8",
            "--data.init_args.num_workers", "0",
            "--trainer.max_epochs", "2", "--trainer.limit_train_batches", "2", "--trainer.num_sanity_val_steps", "0",
            "--trainer.enable_progress_bar", "false", "--run.wandb", "disabled", *extra_args]
    if stages_file is not None:
        args += ["--data.class_path", "tests.helpers.tuning.StageRecordingISIC2017",
                 "--data.init_args.stages_file", str(stages_file)]
    search = {"name": "fake", "config": [str(REPO / "experiments" / "demo_synthetic.yaml")], "dataset": "isic2017",
              "args": args, "objective": {"metric": "val/score", "direction": "maximize"}, "trials": 5,
              "sampler": {"class": "BruteForceSampler", "seed": 0},
              "space": {"model.init_args.x": {"int": [1, 5]}}}
    search.update(overrides)
    path.write_text(yaml.safe_dump(search, sort_keys=False))
    return path
