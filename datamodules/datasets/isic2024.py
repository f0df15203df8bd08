"""ISIC 2024 (SLICE-3D, Kurtansky et al. 2024): 15 × 15 mm lesion crops of 3D total-body photographs, malignant or not.

Download the data of the Kaggle competition "ISIC 2024 - Skin Cancer Detection with 3D-TBP"
(https://www.kaggle.com/competitions/isic-2024-challenge/data) and keep the folder as is::

    ROOT/train-image.hdf5       one scalar dataset per image, named by its isic_id, holding the JPEG file's bytes
    ROOT/train-metadata.csv     isic_id,target,patient_id,age_approx,sex,anatom_site_general,... (55 columns)
    ROOT/test-image.hdf5        the same for the test images
    ROOT/test-metadata.csv      the same columns without target and the diagnosis columns (44 columns)
    ROOT/sample_submission.csv  isic_id,target
    (ROOT/train-image/image/ISIC_*.jpg, the training images as single files, is not read)

``target`` is 1 for a histologically confirmed malignancy (melanoma, basal or squamous cell carcinoma), 0 otherwise:
393 of the 401,059 training images, from 1,042 patients. Images are read from the HDF5 files
(:mod:`dermlab.files.hdf5`: each DataLoader worker opens its own handle) and decoded like any JPEG file.

The released test set has no labels (Kaggle scores it), so results are measured by patient-grouped folds of the
training images (``split: kfold``, default: stratified on ``target``, grouped by ``patient_id``; test = fold
``fold``, validation = fold ``fold + 1 mod n_folds``): no patient has images on two sides, and the split audit
checks the patient ids (the ``groups``, written as ``lesion_id`` in ``splits/*.csv``). ``split: holdout`` moves
``val_size`` training images (whole patients) to validation and takes the released test set as the test split,
for ``dermlab predict`` to write a Kaggle submission (``isic_id,target``: P(malignant)).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from datamodules.datasets.pooled import PooledDataset, PooledReader
from datamodules.datasets.table import ImageTable
from dermlab.errors import DataError
from dermlab.files.hdf5 import HDF5Image, members
from dermlab.files.io import binary_column, read_table, require_dir
from dermlab.files.metadata import patient_fields, patient_rows

FILES = {"train": ("train-metadata.csv", "train-image.hdf5"), "test": ("test-metadata.csv", "test-image.hdf5")}
COLUMNS = {"train": ("isic_id", "target", "patient_id"), "test": ("isic_id", "patient_id")}
ATTRIBUTES = {"sex": "sex", "age": "age_approx", "localization": "anatom_site_general"}  # subgroup ← CSV column
HINT = ("Download the ISIC 2024 data from https://www.kaggle.com/competitions/isic-2024-challenge/data or write a "
        "synthetic copy with `dermlab synth --dataset isic2024 --out DIR`.")


class ISIC2024Reader(PooledReader):
    """ISIC 2024 / SLICE-3D, benign vs malignant, in patient-grouped folds (see the module docstring).

    Args:
        root: the folder as downloaded.
        split: ``kfold`` (patient-grouped stratified K-fold of the training images) or ``holdout`` (``val_size``
            training images of whole patients validate; the released, unlabelled test set is the test split).
        fold, n_folds: which fold tests (``kfold``; the next one validates) and how many.
        val_size: validation images for ``holdout``.
        **kwargs: as :class:`datamodules.datasets.reader.SplitReader` (a data module's also as
            :class:`datamodules.base.SkinDataModule`).
    """

    class_names = ("benign", "malignant")

    def __init__(self, root: str, split: Literal["kfold", "holdout"] = "kfold", fold: int = 0, n_folds: int = 5,
                 val_size: int = 999, **kwargs: Any) -> None:
        if split not in ("kfold", "holdout"):
            raise ValueError(f"split must be kfold or holdout for ISIC 2024, got {split!r}")
        super().__init__(root, split=split, fold=fold, n_folds=n_folds, val_size=val_size, **kwargs)
        self._metadata: dict[str, pd.DataFrame] = {}

    def read_metadata(self, part: str) -> pd.DataFrame:
        """``train-metadata.csv`` or ``test-metadata.csv`` (``part``: train / test), read once: the id, target and
        patient columns and the subgroup ones where present.

        Raises:
            DataError: the file or a needed column is missing (named), an id is listed twice, a row has no
                ``patient_id``.
        """
        if part not in self._metadata:
            require_dir(self.root, "data root", HINT)
            csv = self.root / FILES[part][0]
            table = read_table(csv, COLUMNS[part], hint=HINT, optional=ATTRIBUTES.values())
            absent = table.patient_id.fillna("").str.strip().eq("").to_numpy()
            if absent.any():
                row = int(np.flatnonzero(absent)[0])
                raise DataError(f"'{csv}' row {row + 2} ({table.isic_id.iloc[row]}) has no patient_id; the folds are "
                                "grouped by patient, so every image needs one.")
            self._metadata[part] = table
        return self._metadata[part]

    def images(self, part: str, ids: list[str]) -> list[Path]:
        """The images ``ids`` in ``train-image.hdf5`` / ``test-image.hdf5`` (``part``), which must open as HDF5;
        whether each id is in it is checked at set-up (``on_bad_image``), like any image file."""
        container = self.root / FILES[part][1]
        if not container.is_file():
            raise DataError(f"'{container}' does not exist; it holds the images listed in '{FILES[part][0]}'. {HINT}")
        members(container)  # a damaged file stops here, naming itself
        return [HDF5Image(container, i) for i in ids]

    def read_pool(self) -> ImageTable:
        """Every training image: ``target`` as the label (0 benign, 1 malignant), ``patient_id`` as the group."""
        table = self.read_metadata("train")
        csv = self.root / FILES["train"][0]
        ids = table.isic_id.tolist()
        return ImageTable(ids, self.images("train", ids), binary_column(table, "target", csv), csv,
                          groups=table.patient_id.str.strip().tolist())

    def read_official_test(self) -> ImageTable:
        """The released test images (``holdout``), labels unknown (-1): for ``dermlab predict``."""
        table = self.read_metadata("test")
        ids = table.isic_id.tolist()
        return ImageTable(ids, self.images("test", ids), np.full(len(ids), -1), self.root / FILES["test"][0],
                          groups=table.patient_id.str.strip().tolist())

    def patient_metadata(self, split: str) -> pd.DataFrame:
        """``age`` (``age_approx``), ``sex`` and ``localization`` (``anatom_site_general``) of ``split``'s
        images from the metadata CSVs; ``unknown`` where empty."""
        frames = []
        for part in ("train", "test"):
            if (self.root / FILES[part][0]).is_file():
                table = self.read_metadata(part)
                frames.append(patient_fields(table.isic_id.tolist(), str(self.root / FILES[part][0]), **{
                    name: table[column] for name, column in ATTRIBUTES.items() if column in table.columns}))
        return patient_rows(pd.concat(frames), self.table(split).ids)

    def ground_truth(self, split: str) -> pd.DataFrame:
        """``split``'s labels as a solution file ``isic_id,target`` for ``dermlab score`` (a fold of the training
        images; the released test set has none).

        Raises:
            DataError: the split's labels are unknown (the released test set).
        """
        table = self.table(split)
        if (table.labels < 0).any():
            raise DataError(f"the {split} split of '{self.root}' has no labels (the released test set is scored by "
                            "Kaggle); use split: kfold to test on labelled images.")
        return pd.DataFrame({"isic_id": table.ids, "target": table.labels})

    def submission(self, ids: list[str], probabilities: np.ndarray) -> pd.DataFrame:
        """The Kaggle submission ``isic_id,target`` with P(malignant) (``sample_submission.csv``'s layout)."""
        return pd.DataFrame({"isic_id": ids, "target": probabilities[:, 1]})


class ISIC2024Dataset(PooledDataset):
    """ISIC 2024 (SLICE-3D), one split, as a plain torch ``Dataset``; keyword arguments go to :class:`ISIC2024Reader`;
    ``scheme`` is the reader's ``split`` (the split scheme), ``fold`` its fold.

    Items as :class:`~datamodules.datasets.reader.ReaderDataset` gives them.
    """

    reader_class = ISIC2024Reader
