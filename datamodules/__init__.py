"""LightningDataModules for the dermoscopy data sets, one per official layout, on a shared base."""

from datamodules.base import ImageTable, SkinDataModule
from datamodules.derm7pt import Derm7ptDataModule
from datamodules.ham10000 import HAM10000DataModule
from datamodules.isic2016 import ISIC2016DataModule
from datamodules.isic2017 import ISIC2017DataModule
from datamodules.isic2018 import ISIC2018SegmentationDataModule, ISIC2018Task3DataModule
from datamodules.isic2019 import ISIC2019DataModule
from datamodules.isic2020 import ISIC2020DataModule
from datamodules.isic2024 import ISIC2024DataModule
from datamodules.isic_sample import ISICSampleDataModule
from datamodules.vitiligo import VitiligoDataModule

# `dermlab prepare --dataset NAME` and the README use these names (the same as `dermlab synth`).
DATAMODULES = {
    "isic2016": (ISIC2016DataModule, {}),
    "isic2017": (ISIC2017DataModule, {}),
    "isic2018_task1": (ISIC2018SegmentationDataModule, {"task": 1}),
    "isic2018_task2": (ISIC2018SegmentationDataModule, {"task": 2}),
    "isic2018_task3": (ISIC2018Task3DataModule, {}),
    "isic2019": (ISIC2019DataModule, {}),
    "isic2020": (ISIC2020DataModule, {}),
    "isic2024": (ISIC2024DataModule, {}),
    "ham10000": (HAM10000DataModule, {}),
    "vitiligo": (VitiligoDataModule, {}),
    "derm7pt": (Derm7ptDataModule, {}),
}

__all__ = ["DATAMODULES", "Derm7ptDataModule", "HAM10000DataModule", "ISIC2016DataModule", "ISIC2017DataModule",
           "ISIC2018SegmentationDataModule", "ISIC2018Task3DataModule", "ISIC2019DataModule", "ISIC2020DataModule",
           "ISIC2024DataModule", "ISICSampleDataModule", "ImageTable", "SkinDataModule", "VitiligoDataModule"]
