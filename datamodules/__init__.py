"""LightningDataModules for the dermoscopy data sets, one per official layout."""

from datamodules.base import ImageTable, SkinDataModule
from datamodules.isic2017 import ISIC2017DataModule

__all__ = ["ImageTable", "SkinDataModule", "ISIC2017DataModule"]
