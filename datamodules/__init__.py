"""LightningDataModules for the dermoscopy data sets, one per official layout, on a shared base.

Each builds on its data set's reader in :mod:`datamodules.datasets` (free of Lightning). The classes are imported
on first use (PEP 562), so that importing :mod:`datamodules.datasets` or a plain helper (:mod:`datamodules.splits`,
:mod:`datamodules.transforms`) does not import Lightning.
"""

from __future__ import annotations

import importlib
from typing import Any

_MODULE_OF = {
    "ImageTable": "datasets.table",
    "SkinDataModule": "base",
    "DDIDataModule": "ddi",
    "Derm7ptDataModule": "derm7pt",
    "Fitzpatrick17kDataModule": "fitzpatrick17k",
    "HAM10000DataModule": "ham10000",
    "ISIC2016DataModule": "isic2016",
    "ISIC2017DataModule": "isic2017",
    "ISIC2018SegmentationDataModule": "isic2018",
    "ISIC2018Task3DataModule": "isic2018",
    "ISIC2019DataModule": "isic2019",
    "ISIC2020DataModule": "isic2020",
    "ISIC2024DataModule": "isic2024",
    "ISICSampleDataModule": "isic_sample",
    "PADUFES20DataModule": "pad_ufes20",
    "VitiligoDataModule": "vitiligo",
}

# `dermlab prepare --dataset NAME` and the README use these names (the same as `dermlab synth`): the data module of
# each; the arguments that tell two names of one data module apart are its reader's (datamodules.datasets.READERS).
_DATAMODULE_OF = {
    "isic2016": "ISIC2016DataModule",
    "isic2017": "ISIC2017DataModule",
    "isic2018_task1": "ISIC2018SegmentationDataModule",
    "isic2018_task2": "ISIC2018SegmentationDataModule",
    "isic2018_task3": "ISIC2018Task3DataModule",
    "isic2019": "ISIC2019DataModule",
    "isic2020": "ISIC2020DataModule",
    "isic2024": "ISIC2024DataModule",
    "ham10000": "HAM10000DataModule",
    "vitiligo": "VitiligoDataModule",
    "derm7pt": "Derm7ptDataModule",
    "pad_ufes20": "PADUFES20DataModule",
    "ddi": "DDIDataModule",
    "fitzpatrick17k": "Fitzpatrick17kDataModule",
}

__all__ = sorted([*_MODULE_OF, "DATAMODULES"])


def __getattr__(name: str) -> Any:
    if name == "DATAMODULES":
        from datamodules.datasets import READERS

        value: Any = {key: (__getattr__(cls), READERS[key][1]) for key, cls in _DATAMODULE_OF.items()}
    elif name in _MODULE_OF:
        value = getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
