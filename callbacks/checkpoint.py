"""``ModelCheckpoint`` whose ``last.ckpt`` is the last epoch, so ``--ckpt_path last`` resumes where a run stopped.

Lightning 2.6's ``ModelCheckpoint(save_last=True)`` writes ``last.ckpt`` only in a step where it also saved a
top-k checkpoint: with ``monitor: val/auc`` and ``save_top_k: 1``, a run whose best epoch was 0 keeps the epoch-0
state in ``last.ckpt`` however long it trains, and a crashed run "resumed from last" silently starts over from
its best epoch. This subclass writes ``last.ckpt`` after every epoch (at the same points where Lightning decides
to save), whether or not the monitored metric improved.

:class:`AtomicCheckpointIO` is the checkpoint IO of every run built by ``dermlab`` (:func:`use_atomic_checkpoints`,
also under Lightning's ``AsyncCheckpointIO``): each save is written to a temporary file beside the target and
renamed over it, and each load is checked first (:mod:`dermlab.files.checkpoints`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint as LightningModelCheckpoint
from lightning.pytorch.plugins.io import AsyncCheckpointIO
from typing_extensions import override

from dermlab.files.checkpoints import atomic_save, read_checkpoint


class ModelCheckpoint(LightningModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` (same arguments) with ``last.ckpt`` written at the end of every epoch."""

    _last_saved_step: int | None = None

    @override
    def _save_last_checkpoint(self, trainer: L.Trainer, monitor_candidates: dict[str, torch.Tensor]) -> None:
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

    @override
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        self._ensure_last(trainer, on_train_epoch_end=True)

    @override
    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        self._ensure_last(trainer, on_train_epoch_end=False)

    @override
    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Lightning's end-of-training ``last.ckpt``, except after ``fast_dev_run``: Lightning documents that a
        fast dev run writes no checkpoint, yet its ``on_train_end`` writes ``last.ckpt``, which a later run of the
        same folder would resume from (``--ckpt_path last``, a grid cell)."""
        if trainer.fast_dev_run:
            return
        super().on_train_end(trainer, pl_module)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's ``TorchCheckpointIO`` for local files, with atomic saves
    (:func:`~dermlab.files.checkpoints.atomic_save`)
    and checked loads (:func:`~dermlab.files.checkpoints.read_checkpoint`: a damaged file stops with a one-line
    ``DataError`` naming it and the other checkpoints of its folder). Remote URLs (``s3://``...) are Lightning's."""

    @override
    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
                        ) -> None:
        """Write ``checkpoint`` to a temporary file beside ``path`` and rename it over ``path`` (a URL: Lightning's).

        Raises:
            TypeError: ``storage_options`` for a local file (nothing uses them here).
        """
        if _remote(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO.save_checkpoint takes no storage_options")
        atomic_save(checkpoint, path)

    @override
    def load_checkpoint(self, path: str | Path, map_location: Any = lambda storage, loc: storage,
                        weights_only: bool | None = None) -> dict[str, Any]:
        """The checkpoint at ``path``, checked first (a URL: Lightning's load).

        Raises:
            DataError: the file is absent, damaged or not a checkpoint; the message names the folder's others.
        """
        if _remote(path):
            return super().load_checkpoint(path, map_location, weights_only)
        return read_checkpoint(path, map_location=map_location, weights_only=weights_only)


def _remote(path: str | Path) -> bool:
    return "://" in str(path)


def use_atomic_checkpoints(trainer: L.Trainer) -> None:
    """Make ``trainer`` save and load through :class:`AtomicCheckpointIO`: in place of Lightning's default
    ``TorchCheckpointIO``, also as the base of an ``AsyncCheckpointIO``. Another checkpoint IO (a strategy's own,
    e.g. FSDP's or DeepSpeed's, or one a config names) is left as it is."""
    strategy = trainer.strategy
    current = strategy.checkpoint_io  # Lightning fills in its default here (also under a wrapper)
    if type(current) is TorchCheckpointIO:
        strategy.checkpoint_io = AtomicCheckpointIO()
    elif type(current) is AsyncCheckpointIO and type(current.checkpoint_io) is TorchCheckpointIO:
        strategy.checkpoint_io = AsyncCheckpointIO(AtomicCheckpointIO())
