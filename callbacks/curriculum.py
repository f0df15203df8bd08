"""Curriculum sample selection, ``weighting`` paper §3.3: self-paced learning (SPL) and online hard example
mining (OHEM), usable with every module of the suite.

In each training mini-batch of M samples only m count (weight 1, the others 0):

    m = M · exp(αe) / (1 + exp(αe))                                      (Eq. 9)

with e the epoch counted from 0, so m = M/2 at e = 0, and α "defined so that all sample weights are set to 1
for the second half of training" (§3.3): every sample counts from e = E/2 on (E = ``max_epochs``; for an odd E
from e = ⌈E/2⌉), and before that at least one does not. m is Eq. 9 rounded to the nearest integer (halves up),
and α = ln(2M − 1) / (E/2) is the value for which M·σ(α·E/2) = M − 1/2, the point where rounding first gives M;
e ≥ E/2 returns M outright, so floating point cannot move that epoch. (Rounding up, as before, reached M early:
at e = 61 of E = 150 for M = 20.) SPL keeps the m lowest-loss samples (easiest first), OHEM the m highest-loss
ones (hardest first). ``per_class`` OHEM keeps the hardest ⌈M_c·m/M⌉ of each class c present in the batch (the
paper's suggested follow-up).

The callback attaches itself to the module (``module.curriculum``); the module's loss asks it for the 0/1
selection of each training batch and multiplies the per-sample weights by it (class weights, data-set weights
stay). Under DDP each rank selects within its own batch (M = the per-rank batch size); with gradient
accumulation each micro-batch selects on its own. Logged: ``curriculum/m`` (mean per epoch),
``curriculum/kept`` (fraction of samples that counted) and, with W&B, a histogram of the final sample weights
per epoch.
"""

from __future__ import annotations

import math
from typing import Any, Literal, cast

import lightning.pytorch as L
import torch
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities.types import STEP_OUTPUT
from typing_extensions import override

from callbacks.protocols import BatchSize, CurriculumModule


def kept_count(batch_size: int, epoch: int, max_epochs: int) -> int:
    """Eq. 9's m for a batch of M = ``batch_size`` at epoch e = ``epoch`` (from 0) of E = ``max_epochs``.

    ⌊M·σ(αe) + 1/2⌋ with α = ln(2M − 1) / (E/2): M/2 (halves rounded up) at e = 0, at most M − 1 for e < E/2,
    M for e ≥ E/2 (§3.3: every sample counts in the second half). E.g. M = 20, E = 6: 10, 15, 18, 20, 20,
    20. At least 1.
    """
    half = max_epochs / 2
    if epoch >= half or batch_size <= 1:
        return max(1, batch_size)
    alpha = math.log(2 * batch_size - 1) / half
    share = 1.0 / (1.0 + math.exp(-alpha * epoch))
    return max(1, min(batch_size - 1, math.floor(batch_size * share + 0.5)))


class Curriculum(L.Callback):
    """SPL (``mode: spl``) or OHEM (``mode: ohem``; ``per_class: true`` for the class-aware variant).

    Add it to any run, e.g. ``--trainer.callbacks+=callbacks.Curriculum --trainer.callbacks.mode=ohem``
    or in a config (see ``experiments/weighting/``).

    Needs a :class:`~callbacks.protocols.CurriculumModule` (every classifier of the suite: the module computes the
    per-sample losses and asks :meth:`select`) and, for ``curriculum/m_full_batch``, a
    :class:`~callbacks.protocols.BatchSize` data module (else the largest m of the epoch stands in for M).

    Raises:
        ValueError: an unknown ``mode``, or ``per_class`` with ``spl``.
    """

    def __init__(self, mode: Literal["spl", "ohem"] = "ohem", per_class: bool = False):
        if mode not in ("spl", "ohem"):
            raise ValueError(f"curriculum mode must be spl or ohem, got {mode!r}")
        if per_class and mode != "ohem":
            raise ValueError("per_class selection is the class-aware OHEM variant; use mode: ohem")
        self.mode, self.per_class = mode, per_class
        self.max_epochs, self.epoch = 1, 0
        self.counts: list[int] = []
        self.weights: list[torch.Tensor] = []
        self.last_keep: torch.Tensor | None = None

    # --- what the module calls --------------------------------------------------------------------------------
    def share(self, batch_size: int) -> float:
        """The kept share m / M at the current epoch for a batch of M = ``batch_size`` (per-class OHEM keeps that
        share of each class)."""
        return kept_count(batch_size, self.epoch, self.max_epochs) / batch_size

    def select(self, losses: torch.Tensor, labels: torch.Tensor, module: torch.nn.Module | None = None
               ) -> torch.Tensor:
        """0/1 weights (B,) for a batch with per-sample ``losses`` (B,) and ``labels`` (B,): the m easiest (SPL) or
        hardest (OHEM), or per class the ⌈M_c·m/M⌉ hardest (``per_class``). ``module``, the LightningModule
        asking (:class:`~lightning_modules.losses.SampleSelection`), is not read."""
        size = len(losses)
        keep = torch.zeros_like(losses)
        if self.per_class:
            for label in labels.unique():
                members = (labels == label).nonzero().flatten()
                m = max(1, math.ceil(len(members) * self.share(size) - 1e-9))
                keep[members[losses[members].topk(m).indices]] = 1.0
        else:
            m = kept_count(size, self.epoch, self.max_epochs)
            keep[losses.topk(m, largest=self.mode == "ohem").indices] = 1.0
        self.counts.append(int(keep.sum()))
        self.last_keep = keep
        return keep

    # --- Lightning hooks ----------------------------------------------------------------------------------------
    @override
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.max_epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else 1
        cast(CurriculumModule, pl_module).curriculum = self

    @override
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        cast(CurriculumModule, pl_module).curriculum = None

    @override
    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.epoch, self.counts, self.weights = trainer.current_epoch, [], []

    @override
    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: STEP_OUTPUT,
                           batch: dict[str, Any], batch_idx: int) -> None:
        if self.last_keep is not None and len(self.last_keep) == len(batch["label"]):
            weights = cast(CurriculumModule, pl_module).sample_weights(batch)
            self.weights.append((weights.detach().float() * self.last_keep).cpu())
        self.last_keep = None

    @override
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.counts:
            return
        data = cast("BatchSize | None", trainer.datamodule)
        batch_size = data.batch_size if data is not None else max(self.counts)
        pl_module.log_dict({"curriculum/m": sum(self.counts) / len(self.counts),
                            "curriculum/m_full_batch": float(kept_count(batch_size, self.epoch, self.max_epochs)),
                            "curriculum/kept": sum(self.counts) / max(1, sum(len(w) for w in self.weights))})
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger) and self.weights:
                import wandb

                logger.experiment.log({"curriculum/weights": wandb.Histogram(torch.cat(self.weights).cpu().numpy()),
                                       "trainer/global_step": trainer.global_step})
        self.counts, self.weights = [], []

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "per_class": self.per_class}
