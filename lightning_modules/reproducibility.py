"""Reproducible training epochs for every LightningModule of the suite (see :mod:`dermlab.runtime.seeding`)."""

from __future__ import annotations

from dermlab.runtime.seeding import run_seed, seed_epoch


class EpochSeeding:
    """Mixin: torch, NumPy and Python's ``random`` are reseeded from (run seed, epoch) when each training epoch
    starts, so an epoch that a resumed run replays (``--ckpt_path last``) draws its dropout, patch dropout and
    every other random number exactly as the uninterrupted run did."""

    def on_train_epoch_start(self) -> None:
        """Reseed from (run seed, ``current_epoch``), then run the next class's hook."""
        seed_epoch(run_seed(), self.current_epoch)
        super().on_train_epoch_start()
