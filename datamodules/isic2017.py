"""ISIC 2017 Part 3 (lesion classification) in its official layout: its LightningDataModule.

The official layout is read by :mod:`datamodules.datasets.isic2017` (free of Lightning, usable in a plain
PyTorch loop); this module adds the suite's set-up, split audit and loaders
(:class:`~datamodules.base.SkinDataModule`).
"""

from __future__ import annotations

from datamodules.base import SkinDataModule
from datamodules.datasets.isic2017 import ISIC2017Reader


class ISIC2017DataModule(ISIC2017Reader, SkinDataModule):
    """ISIC 2017 Part 3 as a LightningDataModule: the arguments of
    :class:`~datamodules.datasets.isic2017.ISIC2017Reader` (the data set's own, ``root``, ``seed``,
    ``on_bad_image``) and of :class:`~datamodules.base.SkinDataModule`."""
