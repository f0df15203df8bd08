"""The LightningDataModule of the data set read by :mod:`datamodules.datasets.pooled`.

The official layout is read by :mod:`datamodules.datasets.pooled` (free of Lightning, usable in a plain
PyTorch loop); this module adds the suite's set-up, split audit and loaders
(:class:`~datamodules.base.SkinDataModule`).
"""

from __future__ import annotations

from datamodules.base import SkinDataModule
from datamodules.datasets.pooled import PooledReader


class PooledDataModule(PooledReader, SkinDataModule):
    """Pooled as a LightningDataModule: the arguments of :class:`~datamodules.datasets.pooled.PooledReader`
    (the data set's own, ``root``, ``seed``, ``on_bad_image``) and of :class:`~datamodules.base.SkinDataModule`."""
