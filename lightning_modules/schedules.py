"""Learning-rate schedules tied to the run's length.

``isic2018`` paper (002) §1: "The initial learning rate is set to be 0.001, and a linear learning rate schedule
is implemented." torch's ``LinearLR`` needs ``total_iters`` up front; a fixed value (150 in the old configs)
leaves the learning rate at its end value for every epoch past it when a run is longer, and never reaches it when
shorter. :class:`LinearOverRun` takes the count from ``trainer.max_epochs`` instead.
"""

from __future__ import annotations

import lightning.pytorch as L
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LinearLR, LRScheduler


class LinearOverRun(LinearLR):
    """``LinearLR`` (stepped once per epoch) from ``start_factor`` to ``end_factor`` × the base learning rate over
    the whole run: with ``total_iters: null`` (the default) the module sets it to ``trainer.max_epochs``
    (:func:`fit_to_run`), so epoch e (0-based) of E trains at lr·(s + (f − s)·e/E) and the end value f is
    reached by the step after the last epoch, never before (E = 4, s = 1, f = 0: 1, 0.75, 0.5, 0.25, then 0).
    An integer ``total_iters`` fixes the count as ``LinearLR`` does.

    Args:
        optimizer: the optimiser whose learning rates are scaled.
        start_factor, end_factor: multipliers of the base learning rate at epoch 0 and after epoch E − 1.
        total_iters: epochs of the decay; None: the run's ``trainer.max_epochs``.
    """

    def __init__(self, optimizer: Optimizer, start_factor: float = 1.0, end_factor: float = 0.0,
                 total_iters: int | None = None, last_epoch: int = -1):
        self.follows_run = total_iters is None
        super().__init__(optimizer, start_factor, end_factor, total_iters or 1, last_epoch)


def fit_to_run(scheduler: LRScheduler, trainer: L.Trainer | None) -> LRScheduler:
    """Set a :class:`LinearOverRun` without ``total_iters`` to the trainer's ``max_epochs`` (others unchanged).

    Raises:
        ValueError: the run has no finite epoch count (``max_epochs`` None or −1) to decay over.
    """
    if getattr(scheduler, "follows_run", False):
        epochs = getattr(trainer, "max_epochs", None)
        if epochs is None or epochs < 1:
            raise ValueError(f"LinearOverRun decays over trainer.max_epochs, which is {epochs}; set max_epochs or "
                             "give the scheduler's total_iters")
        scheduler.total_iters = int(epochs)
    return scheduler
