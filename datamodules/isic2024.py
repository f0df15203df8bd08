"""The LightningDataModule of the data set read by :mod:`datamodules.datasets.isic2024`.

The official layout is read by :mod:`datamodules.datasets.isic2024` (free of Lightning, usable in a plain
PyTorch loop); this module adds the suite's set-up, split audit and loaders
(:class:`~datamodules.base.SkinDataModule`).
"""

from __future__ import annotations

from datamodules.datasets.isic2024 import ISIC2024Reader
from datamodules.pooled import PooledDataModule


class ISIC2024DataModule(ISIC2024Reader, PooledDataModule):
    """ISIC 2024 (SLICE-3D) as a LightningDataModule: the arguments of
    :class:`~datamodules.datasets.isic2024.ISIC2024Reader` (the data set's own, ``root``, ``seed``,
    ``on_bad_image``) and of :class:`~datamodules.base.SkinDataModule`."""
