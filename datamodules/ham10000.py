"""The LightningDataModule of the data set read by :mod:`datamodules.datasets.ham10000`.

The official layout is read by :mod:`datamodules.datasets.ham10000` (free of Lightning, usable in a plain
PyTorch loop); this module adds the suite's set-up, split audit and loaders
(:class:`~datamodules.base.SkinDataModule`).
"""

from __future__ import annotations

from datamodules.datasets.ham10000 import HAM10000Reader
from datamodules.pooled import PooledDataModule


class HAM10000DataModule(HAM10000Reader, PooledDataModule):
    """HAM10000 as a LightningDataModule: the arguments of :class:`~datamodules.datasets.ham10000.HAM10000Reader` (the
    data set's own, ``root``, ``seed``, ``on_bad_image``) and of :class:`~datamodules.base.SkinDataModule`."""
