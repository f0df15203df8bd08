"""The data sets without Lightning: one reader and one torch ``Dataset`` per official layout.

A reader (:class:`~datamodules.datasets.reader.SplitReader`) maps a data set's folder, as downloaded, to an
:class:`~datamodules.datasets.table.ImageTable` per split; a ``Dataset`` serves one split to a plain PyTorch loop::

    from torch.utils.data import DataLoader
    from datamodules.datasets import ISIC2017Dataset

    train = ISIC2017Dataset("/data/isic2017", split="train", task="melanoma")
    for batch in DataLoader(train, batch_size=32, shuffle=True):
        images, labels = batch["image"], batch["label"]   # (32, 3, 224, 224) float, (32,) int

Nothing here imports Lightning; each LightningDataModule of :mod:`datamodules` is its data set's reader plus the
suite's loaders.
"""

from datamodules.datasets.ddi import DDIDataset, DDIReader
from datamodules.datasets.derm7pt import Derm7ptDataset, Derm7ptReader
from datamodules.datasets.fitzpatrick17k import Fitzpatrick17kDataset, Fitzpatrick17kReader
from datamodules.datasets.ham10000 import HAM10000Dataset, HAM10000Reader
from datamodules.datasets.image_dataset import ImageTableDataset
from datamodules.datasets.isic2016 import ISIC2016Dataset, ISIC2016Reader
from datamodules.datasets.isic2017 import ISIC2017Dataset, ISIC2017Reader
from datamodules.datasets.isic2018 import (
    ISIC2018SegmentationDataset,
    ISIC2018SegmentationReader,
    ISIC2018Task3Dataset,
    ISIC2018Task3Reader,
)
from datamodules.datasets.isic2019 import ISIC2019Dataset, ISIC2019Reader
from datamodules.datasets.isic2020 import ISIC2020Dataset, ISIC2020Reader
from datamodules.datasets.isic2024 import ISIC2024Dataset, ISIC2024Reader
from datamodules.datasets.isic_sample import ISICSampleDataset, ISICSampleReader
from datamodules.datasets.pad_ufes20 import PADUFES20Dataset, PADUFES20Reader
from datamodules.datasets.reader import ReaderDataset, SplitReader
from datamodules.datasets.table import ImageTable
from datamodules.datasets.vitiligo import VitiligoDataset, VitiligoReader

#: The data set names of ``dermlab synth`` / ``dermlab prepare`` and the configs, with the reader of each and the
#: arguments that tell two names of one reader apart.
READERS: dict[str, tuple[type[SplitReader], dict[str, object]]] = {
    "isic2016": (ISIC2016Reader, {}),
    "isic2017": (ISIC2017Reader, {}),
    "isic2018_task1": (ISIC2018SegmentationReader, {"task": 1}),
    "isic2018_task2": (ISIC2018SegmentationReader, {"task": 2}),
    "isic2018_task3": (ISIC2018Task3Reader, {}),
    "isic2019": (ISIC2019Reader, {}),
    "isic2020": (ISIC2020Reader, {}),
    "isic2024": (ISIC2024Reader, {}),
    "ham10000": (HAM10000Reader, {}),
    "vitiligo": (VitiligoReader, {}),
    "derm7pt": (Derm7ptReader, {}),
    "pad_ufes20": (PADUFES20Reader, {}),
    "ddi": (DDIReader, {}),
    "fitzpatrick17k": (Fitzpatrick17kReader, {}),
}

__all__ = ["READERS", "DDIDataset", "DDIReader", "Derm7ptDataset", "Derm7ptReader", "Fitzpatrick17kDataset",
           "Fitzpatrick17kReader", "HAM10000Dataset", "HAM10000Reader", "ISIC2016Dataset",
           "ISIC2016Reader", "ISIC2017Dataset", "ISIC2017Reader", "ISIC2018SegmentationDataset",
           "ISIC2018SegmentationReader", "ISIC2018Task3Dataset", "ISIC2018Task3Reader", "ISIC2019Dataset",
           "ISIC2019Reader", "ISIC2020Dataset", "ISIC2020Reader", "ISIC2024Dataset", "ISIC2024Reader",
           "ISICSampleDataset", "ISICSampleReader", "ImageTable", "ImageTableDataset", "PADUFES20Dataset",
           "PADUFES20Reader", "ReaderDataset", "SplitReader", "VitiligoDataset", "VitiligoReader"]
