"""The base LightningDataModule of the data sets whose papers split one labelled pool themselves (HAM10000,
ISIC 2018 task 3, ISIC 2019, ISIC 2020, ISIC 2024).

The split schemes and the diagnosis-guided weights are the reader's (:mod:`datamodules.datasets.pooled`, free of
Lightning); this module adds the suite's set-up, split audit and loaders (:class:`~datamodules.base.SkinDataModule`).
"""

from __future__ import annotations

from datamodules.base import SkinDataModule
from datamodules.datasets.pooled import PooledReader


class PooledDataModule(PooledReader, SkinDataModule):
    """A pooled data set as a LightningDataModule: the split scheme and weights of
    :class:`~datamodules.datasets.pooled.PooledReader` (``split``, ``fold``, ``n_folds``, ``val_size``, ...) and the
    options of :class:`~datamodules.base.SkinDataModule`; each pooled data set's module builds on it."""
