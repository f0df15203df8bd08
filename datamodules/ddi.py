"""The LightningDataModule of the data set read by :mod:`datamodules.datasets.ddi`.

The official layout is read by :mod:`datamodules.datasets.ddi` (free of Lightning, usable in a plain
PyTorch loop); this module adds the suite's set-up, split audit and loaders
(:class:`~datamodules.base.SkinDataModule`).
"""

from __future__ import annotations

from datamodules.datasets.ddi import DDIReader
from datamodules.pooled import PooledDataModule


class DDIDataModule(DDIReader, PooledDataModule):
    """DDI as a LightningDataModule: the arguments of
    :class:`~datamodules.datasets.ddi.DDIReader` (the data set's own, ``root``, ``split``, ``seed``,
    ``on_bad_image``) and of :class:`~datamodules.base.SkinDataModule`."""
