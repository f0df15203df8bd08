"""The LightningDataModule of the data set read by :mod:`datamodules.datasets.derm7pt`.

The official layout is read by :mod:`datamodules.datasets.derm7pt` (free of Lightning, usable in a plain
PyTorch loop); this module adds the suite's set-up, split audit and loaders
(:class:`~datamodules.base.SkinDataModule`).
"""

from __future__ import annotations

from datamodules.base import SkinDataModule
from datamodules.datasets.derm7pt import Derm7ptReader


class Derm7ptDataModule(Derm7ptReader, SkinDataModule):
    """Derm7pt as a LightningDataModule: the arguments of :class:`~datamodules.datasets.derm7pt.Derm7ptReader` (the
    data set's own, ``root``, ``seed``, ``on_bad_image``) and of :class:`~datamodules.base.SkinDataModule`."""
