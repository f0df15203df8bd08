"""The LightningDataModule of the data set read by :mod:`datamodules.datasets.fitzpatrick17k`.

The official layout is read by :mod:`datamodules.datasets.fitzpatrick17k` (free of Lightning, usable in a plain
PyTorch loop); this module adds the suite's set-up, split audit and loaders
(:class:`~datamodules.base.SkinDataModule`).
"""

from __future__ import annotations

from datamodules.datasets.fitzpatrick17k import Fitzpatrick17kReader
from datamodules.pooled import PooledDataModule


class Fitzpatrick17kDataModule(Fitzpatrick17kReader, PooledDataModule):
    """Fitzpatrick17k as a LightningDataModule: the arguments of
    :class:`~datamodules.datasets.fitzpatrick17k.Fitzpatrick17kReader` (the data set's own, ``root``, ``split``,
    ``seed``, ``on_bad_image``) and of :class:`~datamodules.base.SkinDataModule`."""
