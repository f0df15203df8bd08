"""The LightningDataModule of the data set read by :mod:`datamodules.datasets.isic_sample`.

The official layout is read by :mod:`datamodules.datasets.isic_sample` (free of Lightning, usable in a plain
PyTorch loop); this module adds the suite's set-up, split audit and loaders
(:class:`~datamodules.base.SkinDataModule`).
"""

from __future__ import annotations

from datamodules.datasets.isic_sample import ISICSampleReader
from datamodules.isic2017 import ISIC2017DataModule


class ISICSampleDataModule(ISICSampleReader, ISIC2017DataModule):
    """The shipped ISIC-archive sample as a LightningDataModule: the arguments of
    :class:`~datamodules.datasets.isic_sample.ISICSampleReader` (the data set's own, ``root``, ``seed``,
    ``on_bad_image``) and of :class:`~datamodules.base.SkinDataModule`."""
