"""A run that diverges stops at once (callbacks.StopOnNonFinite): one message, a non-zero exit, and no checkpoint
holding the non-finite state; ``--run.stop_on_non_finite false`` gives Lightning's default back."""

from __future__ import annotations

import math
import re

import lightning.pytorch as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from callbacks import StopOnNonFinite
from callbacks.non_finite import NonFiniteTraining, NonFiniteValidation
from dermlab.cli import main
from dermlab.commands.trainer import build_cli
from tests.conftest import tiny_args

pytestmark = pytest.mark.filterwarnings("ignore")


def test_a_diverging_fit_exits_2_with_one_message_and_keeps_no_non_finite_checkpoint(isic2017_root, tmp_path,
                                                                                     capsys):
    run = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:  # lr 1e6: the loss reaches ~1e18 in epoch 0, then NaN
        main(["fit", *tiny_args(isic2017_root, run, "--trainer.max_epochs", "3",
                                "--model.init_args.optimizer.init_args.lr", "1e6")])
    assert exit_info.value.code == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    # which path turns NaN first (a training step or the validation after an epoch) depends on the numerics
    stop = re.match(r"dermlab: error: (?:training diverged: the training loss is nan at epoch (\d+), step (\d+) "
                    r"|validation diverged: val/loss is nan after epoch (\d+), step (\d+) while the training loss "
                    r"is [0-9.e+-]+\. )", message)
    assert stop, message
    for advice in ("a lower learning rate", "--model.init_args.optimizer.init_args.lr",
                   "--run.stop_on_non_finite false"):
        assert advice in message
    training_stop = stop.group(1) is not None
    epoch, step = (int(v) for v in (stop.group(1, 2) if training_stop else stop.group(3, 4)))
    saved = sorted((run / "checkpoints").glob("*.ckpt"))
    for path in saved:  # nothing from the non-finite step or validation on
        checkpoint = torch.load(path, weights_only=False)
        assert checkpoint["global_step"] <= step and checkpoint["epoch"] < epoch, path.name
        assert all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values() if v.is_floating_point())


def test_the_callback_is_in_every_run_and_the_off_switch_removes_it(isic2017_root, tmp_path):
    def stops(*extra: str) -> list:
        cli = build_cli(tiny_args(isic2017_root, tmp_path / "run", *extra), run=False)
        return [c for c in cli.trainer.callbacks if isinstance(c, StopOnNonFinite)]

    assert len(stops()) == 1
    assert stops("--run.stop_on_non_finite", "false") == []


class Tiny(L.LightningModule):
    """y = w·x with a squared loss; ``nan_from``: the loss is NaN from that optimizer step on; ``inf_grad``: the
    weight's gradient is infinite while the loss stays finite; ``manual``: manual optimization (as SegAN)."""

    def __init__(self, nan_from: int | None = None, inf_grad: bool = False, manual: bool = False):
        super().__init__()
        torch.manual_seed(0)
        self.layer = nn.Linear(2, 1)
        self.nan_from, self.automatic_optimization = nan_from, not manual
        if inf_grad:
            self.layer.weight.register_hook(lambda grad: grad + math.inf)

    def training_step(self, batch, batch_idx):
        loss = self.layer(batch[0]).pow(2).mean()
        if self.nan_from is not None and self.global_step >= self.nan_from:
            loss = loss * math.nan
        if self.automatic_optimization:
            return loss
        optimizer = self.optimizers()
        optimizer.zero_grad()
        self.manual_backward(loss)
        optimizer.step()
        return None

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def fit(module: L.LightningModule, callback: L.Callback, **trainer_args) -> L.Trainer:
    torch.manual_seed(0)
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[callback], **trainer_args)
    trainer.fit(module, DataLoader(TensorDataset(torch.randn(8, 2)), batch_size=2))
    return trainer


@pytest.mark.parametrize("manual", [False, True], ids=["automatic", "manual (SegAN's way)"])
def test_a_nan_loss_stops_before_its_optimizer_step(manual):
    module = Tiny(nan_from=5, manual=manual)
    with pytest.raises(NonFiniteTraining, match=r"the training loss is nan at epoch 1, step 5 \(batch 1 of the "
                                                r"epoch\)") as error:
        fit(module, StopOnNonFinite())
    assert "--trainer.precision" not in str(error.value)  # already full precision: not suggested
    assert all(torch.isfinite(p).all() for p in module.parameters())  # the NaN step never reached the weights


def test_full_precision_is_suggested_under_mixed_precision():
    with pytest.raises(NonFiniteTraining, match=r"full precision \(now bf16-mixed\): --trainer.precision 32-true"):
        fit(Tiny(nan_from=1), StopOnNonFinite(), precision="bf16-mixed")


def test_infinite_gradients_under_a_finite_loss_stop_before_they_reach_the_weights():
    with pytest.raises(NonFiniteTraining, match=r"the gradients are not finite \(norm inf, after a loss of [0-9.e-]+\)"
                                                r" at epoch 0, step 0"):
        fit(Tiny(inf_grad=True), StopOnNonFinite())
    # unchecked, the infinite gradient reaches the weights and the loss is caught one step later
    with pytest.raises(NonFiniteTraining, match=r"the training loss is (nan|inf) at epoch 0, step 1"):
        fit(Tiny(inf_grad=True), StopOnNonFinite(check_gradients=False))


class NanValidation(Tiny):
    """Trains finitely; its validation loss is NaN from epoch ``nan_epoch`` on (as when batch-norm running
    statistics overflow: the evaluation path diverges while the training path does not)."""

    def __init__(self, nan_epoch: int):
        super().__init__()
        self.nan_epoch = nan_epoch

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        self.log("train/loss", loss, on_step=True, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        loss = self.layer(batch[0]).pow(2).mean()
        if self.current_epoch >= self.nan_epoch and not self.trainer.sanity_checking:
            loss = loss * math.nan
        self.log("val/loss", loss, on_epoch=True)


def test_a_nan_validation_loss_stops_before_that_validation_writes_a_checkpoint(tmp_path):
    data = DataLoader(TensorDataset(torch.randn(8, 2)), batch_size=2)
    saver = ModelCheckpoint(tmp_path, filename="best-epoch{epoch:02d}", monitor="val/loss", save_last=True,
                            auto_insert_metric_name=False)
    trainer = L.Trainer(max_epochs=4, accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[StopOnNonFinite(), saver])
    with pytest.raises(NonFiniteValidation, match=r"validation diverged: val/loss is nan after epoch 2, step 12 "
                                                  r"while the training loss is [0-9.e-]+\. .*--trainer.precision "
                                                  r"32-true.*--run.stop_on_non_finite false"):
        trainer.fit(NanValidation(nan_epoch=2), data, data)
    saved = {p.name: torch.load(p, weights_only=False)["epoch"] for p in tmp_path.glob("*.ckpt")}
    assert saved["last.ckpt"] == 1 and max(saved.values()) == 1, saved  # epoch 2's state was never saved
    # off: Lightning's default trains on through the NaN validation
    trainer = L.Trainer(max_epochs=4, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(NanValidation(nan_epoch=2), data, data)
    assert trainer.current_epoch == 4
