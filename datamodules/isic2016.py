"""The LightningDataModule of the data set read by :mod:`datamodules.datasets.isic2016`.

The official layout is read by :mod:`datamodules.datasets.isic2016` (free of Lightning, usable in a plain
PyTorch loop); this module adds the suite's set-up, split audit and loaders
(:class:`~datamodules.base.SkinDataModule`).
"""

from __future__ import annotations

from datamodules.base import SkinDataModule
from datamodules.datasets.isic2016 import ISIC2016Reader


class ISIC2016DataModule(ISIC2016Reader, SkinDataModule):
    """ISIC 2016 Part 3 as a LightningDataModule: the arguments of
    :class:`~datamodules.datasets.isic2016.ISIC2016Reader` (the data set's own, ``root``, ``seed``,
    ``on_bad_image``) and of :class:`~datamodules.base.SkinDataModule`."""
