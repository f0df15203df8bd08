"""The LightningDataModule of the data set read by :mod:`datamodules.datasets.vitiligo`.

The official layout is read by :mod:`datamodules.datasets.vitiligo` (free of Lightning, usable in a plain
PyTorch loop); this module adds the suite's set-up, split audit and loaders
(:class:`~datamodules.base.SkinDataModule`).
"""

from __future__ import annotations

from datamodules.base import SkinDataModule
from datamodules.datasets.vitiligo import VitiligoReader


class VitiligoDataModule(VitiligoReader, SkinDataModule):
    """The vitiligo sets as a LightningDataModule: the arguments of
    :class:`~datamodules.datasets.vitiligo.VitiligoReader` (the data set's own, ``root``, ``seed``,
    ``on_bad_image``) and of :class:`~datamodules.base.SkinDataModule`."""
