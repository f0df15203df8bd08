"""The LightningDataModule of the data set read by :mod:`datamodules.datasets.pad_ufes20`.

The official layout is read by :mod:`datamodules.datasets.pad_ufes20` (free of Lightning, usable in a plain
PyTorch loop); this module adds the suite's set-up, split audit and loaders
(:class:`~datamodules.base.SkinDataModule`).
"""

from __future__ import annotations

from datamodules.datasets.pad_ufes20 import PADUFES20Reader
from datamodules.pooled import PooledDataModule


class PADUFES20DataModule(PADUFES20Reader, PooledDataModule):
    """PAD-UFES-20 as a LightningDataModule: the arguments of :class:`~datamodules.datasets.pad_ufes20.PADUFES20Reader`
    (the data set's own, ``root``, ``split``, ``seed``, ``on_bad_image``) and of
    :class:`~datamodules.base.SkinDataModule`."""
