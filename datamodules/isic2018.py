"""ISIC 2018 tasks 1–3: their LightningDataModules.

The official layout is read by :mod:`datamodules.datasets.isic2018` (free of Lightning, usable in a plain
PyTorch loop); this module adds the suite's set-up, split audit and loaders
(:class:`~datamodules.base.SkinDataModule`), and task 3's minority-pair batches.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch.utils.data import DataLoader
from typing_extensions import override

from datamodules.base import SkinDataModule
from datamodules.datasets.isic2018 import ISIC2018SegmentationReader, ISIC2018Task3Reader
from datamodules.pooled import PooledDataModule
from datamodules.samplers import MinorityPairSampler
from dermlab.runtime.seeding import run_seed


class ISIC2018SegmentationDataModule(ISIC2018SegmentationReader, SkinDataModule):
    """ISIC 2018 task 1 or 2 as a LightningDataModule: the arguments of
    :class:`~datamodules.datasets.isic2018.ISIC2018SegmentationReader` (the data set's own, ``root``, ``seed``,
    ``on_bad_image``) and of :class:`~datamodules.base.SkinDataModule`."""


class ISIC2018Task3DataModule(ISIC2018Task3Reader, PooledDataModule):
    """ISIC 2018 task 3 as a LightningDataModule: the arguments of
    :class:`~datamodules.datasets.isic2018.ISIC2018Task3Reader` and of :class:`~datamodules.base.SkinDataModule`,
    and ``minority_pairs``.

    ``minority_pairs`` > 0 builds training batches with :class:`~datamodules.samplers.MinorityPairSampler`:
    that many images of every class per batch (the ``isic2018`` paper's minority triplets need two of a class),
    on the epochs of ``pair_every`` (1: all; a :class:`lightning_modules.triplet.TripletClassifier` sets it to the
    epochs its triplet loss runs, 0 when it has none, so its cross-entropy epochs keep natural batches).

    Raises:
        ValueError: ``minority_pairs`` < 0, or > 0 with another ``sampling`` than ``none``.
    """

    def __init__(self, root: str, minority_pairs: int = 0, **kwargs: Any) -> None:
        super().__init__(root, **kwargs)
        if minority_pairs < 0 or (minority_pairs and self.sampling != "none"):
            raise ValueError(f"minority_pairs ({minority_pairs}) must be ≥ 0 and needs sampling: none, got "
                             f"sampling {self.sampling!r}")
        self.minority_pairs = minority_pairs
        self.pair_every = 1  # which epochs get paired batches; set by TripletClassifier.setup

    @override
    def train_dataloader(self) -> DataLoader:
        """Batches of :class:`~datamodules.samplers.MinorityPairSampler` with ``minority_pairs`` and ``pair_every``
        set (see the class), else the base class's training loader."""
        if not self.minority_pairs or not self.pair_every:
            return super().train_dataloader()
        labels = np.tile(self.table("train").labels, self.train_repeats)
        trainer = getattr(self, "trainer", None)
        world = getattr(trainer, "world_size", 1) or 1
        sampler = MinorityPairSampler(labels, self.batch_size, self.minority_pairs, world_size=world,
                                      seed=run_seed(self.seed), every=self.pair_every)
        # as the base class: a resumed run draws its first epoch's order for the epoch it resumes at
        sampler.set_epoch(trainer.fit_loop.epoch_progress.current.processed if trainer is not None else 0)
        return self._loader("train", sampler=sampler, drop_last=True)
