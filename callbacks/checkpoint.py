"""``ModelCheckpoint`` whose ``last.ckpt`` is the last epoch, so ``--ckpt_path last`` resumes where a run stopped.

Lightning 2.6's ``ModelCheckpoint(save_last=True)`` writes ``last.ckpt`` only in a step where it also saved a
top-k checkpoint: with ``monitor: val/auc`` and ``save_top_k: 1``, a run whose best epoch was 0 keeps the epoch-0
state in ``last.ckpt`` however long it trains, and a crashed run "resumed from last" silently starts over from
its best epoch. This subclass writes ``last.ckpt`` after every epoch (at the same points where Lightning decides
to save), whether or not the monitored metric improved.
"""

from __future__ import annotations

import lightning.pytorch as L
from lightning.pytorch.callbacks import ModelCheckpoint as LightningModelCheckpoint


class ModelCheckpoint(LightningModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` (same arguments) with ``last.ckpt`` written at the end of every epoch."""

    _last_saved_step: int | None = None

    def _save_last_checkpoint(self, trainer: L.Trainer, monitor_candidates) -> None:
        super()._save_last_checkpoint(trainer, monitor_candidates)
        self._last_saved_step = trainer.global_step

    def _ensure_last(self, trainer: L.Trainer, on_train_epoch_end: bool) -> None:
        """Write ``last.ckpt`` now unless Lightning already did in this step or this is not a saving point."""
        from lightning.pytorch.trainer.states import TrainerFn

        if (not self.save_last or trainer.fast_dev_run or trainer.sanity_checking
                or trainer.state.fn != TrainerFn.FITTING
                or self._should_save_on_train_epoch_end(trainer) != on_train_epoch_end
                or self._last_saved_step == trainer.global_step):
            return
        self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        self._ensure_last(trainer, on_train_epoch_end=True)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        self._ensure_last(trainer, on_train_epoch_end=False)
