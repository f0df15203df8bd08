"""The LightningDataModule of the data set read by :mod:`datamodules.datasets.isic2019`.

The official layout is read by :mod:`datamodules.datasets.isic2019` (free of Lightning, usable in a plain
PyTorch loop); this module adds the suite's set-up, split audit and loaders
(:class:`~datamodules.base.SkinDataModule`).
"""

from __future__ import annotations

from datamodules.datasets.isic2019 import ISIC2019Reader
from datamodules.pooled import PooledDataModule


class ISIC2019DataModule(ISIC2019Reader, PooledDataModule):
    """ISIC 2019 as a LightningDataModule: the arguments of :class:`~datamodules.datasets.isic2019.ISIC2019Reader` (the
    data set's own, ``root``, ``seed``, ``on_bad_image``) and of :class:`~datamodules.base.SkinDataModule`."""
