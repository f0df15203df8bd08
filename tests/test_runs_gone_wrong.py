"""A run that diverges stops at once (callbacks.StopOnNonFinite): one message, a non-zero exit, and no checkpoint
holding the non-finite state; ``--run.stop_on_non_finite false`` gives Lightning's default back."""

from __future__ import annotations

import math
import re

import lightning.pytorch as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from callbacks import StopOnNonFinite
from callbacks.non_finite import NonFiniteTraining
from dermlab.cli import main
from dermlab.commands.trainer import build_cli
from tests.conftest import tiny_args

pytestmark = pytest.mark.filterwarnings("ignore")


def test_a_diverging_fit_exits_2_with_one_message_and_keeps_no_non_finite_checkpoint(isic2017_root, tmp_path,
                                                                                     capsys):
    run = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:  # lr 1e6: the loss reaches 1e17 in epoch 0, NaN in epoch 1
        main(["fit", *tiny_args(isic2017_root, run, "--trainer.max_epochs", "3",
                                "--model.init_args.optimizer.init_args.lr", "1e6")])
    assert exit_info.value.code == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert message.startswith("dermlab: error: training diverged: the training loss is nan at epoch 1, step ")
    for advice in ("a lower learning rate (now ", "--model.init_args.optimizer.init_args.lr",
                   "--trainer.gradient_clip_val 1.0", "--run.stop_on_non_finite false"):
        assert advice in message
    step = int(re.search(r"step (\d+)", message).group(1))
    saved = sorted((run / "checkpoints").glob("*.ckpt"))
    assert {p.name for p in saved} == {"best-epoch00.ckpt", "last.ckpt"}  # epoch 0's, nothing after the NaN
    for path in saved:
        checkpoint = torch.load(path, weights_only=False)
        assert checkpoint["global_step"] <= step and checkpoint["epoch"] == 0
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
