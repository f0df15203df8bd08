"""ISIC 2019 (BCN_20000, HAM10000 and MSK images): eight diagnostic classes, 25,331 training images.

Download from https://challenge.isic-archive.com/data/#2019 and keep the files as they unpack::

    ROOT/ISIC_2019_Training_Input/ISIC_0000000.jpg ...   (some ids end in _downsampled: ISIC_0000017_downsampled.jpg)
    ROOT/ISIC_2019_Training_GroundTruth.csv    image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK   (one-hot; UNK never set)
    ROOT/ISIC_2019_Training_Metadata.csv       image,age_approx,anatom_site_general,lesion_id,sex

Classes are the eight of the training truth, in its column order: MEL, NV, BCC, AK, BKL, DF, VASC, SCC. The
challenge's ninth category, UNK ("none of the others"), occurs only in its test set, whose truth was not released
with the data; a training truth row marked UNK is refused. The submission (:meth:`ISIC2019Reader.submission`)
still holds all nine official columns, UNK at probability 0.

There is no released test truth, so the test split comes from the training images: ``split: kfold`` (default),
lesion-grouped stratified K-fold on the metadata's ``lesion_id`` (test = fold ``fold``, validation = fold
``fold + 1 mod n_folds``; :func:`datamodules.splits.grouped_kfold`); ``patch`` and ``weighting`` work as for
HAM10000 (:mod:`datamodules.datasets.pooled`). An image whose ``lesion_id`` is empty is its own group.
Every scheme needs the metadata CSV (it holds the lesion ids); without it set-up stops. The metadata also gives
the subgroup attributes (``age``, ``sex``, ``localization`` from ``anatom_site_general``).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from typing_extensions import override

from datamodules.datasets.pooled import PooledDataset, PooledReader, one_hot_labels
from datamodules.datasets.table import ImageTable
from dermlab.challenge.truth import ISIC2019_CATEGORIES, read_truth
from dermlab.errors import DataError
from dermlab.files.io import image_paths, read_table, require_dir
from dermlab.files.metadata import patient_fields, patient_rows
from dermlab.files.tables import locate

log = logging.getLogger(__name__)

CLASSES = ISIC2019_CATEGORIES[:-1]  # the eight training classes; UNK is a test-only category
UNKNOWN_CATEGORY = ISIC2019_CATEGORIES[-1]
IMAGES = "ISIC_2019_Training_Input"
TRUTH = "ISIC_2019_Training_GroundTruth.csv"
METADATA = "ISIC_2019_Training_Metadata.csv"
METADATA_COLUMNS = ("image", "age_approx", "anatom_site_general", "lesion_id", "sex")
HINT = ("Download ISIC 2019 from https://challenge.isic-archive.com/data/#2019 or write a synthetic copy with "
        "`dermlab synth --dataset isic2019 --out DIR`.")


class ISIC2019Reader(PooledReader):
    """ISIC 2019 training data split by lesion-grouped folds (``split``, ``fold``, ``n_folds``: see
    :class:`~datamodules.datasets.pooled.PooledReader`; ``official`` and ``holdout`` need a released test truth and are
    refused)."""

    class_names = CLASSES

    @override
    def read_pool(self) -> ImageTable:
        require_dir(self.root, "data root", HINT)
        table = self.read_ground_truth(self.root / TRUTH, self.root / IMAGES)
        lesions = self.lesion_ids(table.ids)
        if lesions is not None:
            table.groups = lesions
        return table

    def read_ground_truth(self, csv: Path, images: Path) -> ImageTable:
        """A truth in the ISIC 2019 layout (:func:`dermlab.challenge.truth.read_truth`) with its images in ``images``;
        also the layout of ``extra_train_csv``.

        Raises:
            DataError: another layout, a row that is not one-hot over the nine columns, or a row marked UNK (no
                training class), each naming the file and row.
        """
        truth = read_truth(csv, HINT)
        if truth.layout != "isic2019":
            raise DataError(f"'{csv}' is an {truth.layout} ground truth; ISIC 2019 needs "
                            f"image,{','.join(ISIC2019_CATEGORIES)}.")
        frame = truth.labels.rename_axis("image").reset_index()
        labels = one_hot_labels(frame, ISIC2019_CATEGORIES, csv)
        unknown = np.flatnonzero(labels == len(CLASSES))
        if len(unknown):
            row = int(unknown[0])
            raise DataError(f"'{csv}' row {row + 2} ({frame.image.iloc[row]}) is marked {UNKNOWN_CATEGORY}, which "
                            f"is no training class ({len(unknown)} such row(s)); the released training truth marks "
                            f"none: remove those rows or relabel them as one of {', '.join(CLASSES)}.")
        ids = frame.image.tolist()
        return ImageTable(ids, image_paths(images, ids, csv), labels, csv,
                          extra={"score_weight": truth.weights.tolist()})

    def read_metadata(self) -> pd.DataFrame | None:
        """``ISIC_2019_Training_Metadata.csv`` indexed by image id (None when the file is absent)."""
        csv = self.root / METADATA
        if locate(csv) is None:
            return None
        return read_table(csv, METADATA_COLUMNS, hint=HINT).set_index("image")

    def lesion_ids(self, ids: list[str]) -> list[str] | None:
        """The metadata's ``lesion_id`` of each image (``""`` where empty); None without the metadata file.

        Raises:
            DataError: the metadata lacks rows for some images (naming how many and one).
        """
        metadata = self.read_metadata()
        if metadata is None:
            return None
        absent = [i for i in ids if i not in metadata.index]
        if absent:
            raise DataError(f"'{self.root / METADATA}' has no row for {len(absent)} image(s) of '{self.root / TRUTH}', "
                            f"e.g. {absent[0]}; use the metadata file released with the same training data.")
        lesions = metadata.loc[ids, "lesion_id"].fillna("").str.strip()
        if lesions.eq("").any():
            log.info("ISIC 2019: %d of %d images have no lesion_id; each is its own group in the folds",
                     int(lesions.eq("").sum()), len(ids))
        return lesions.tolist()

    def split_indices(self, pool: ImageTable) -> dict[str, np.ndarray]:
        """The scheme's split of the pool, whole lesions on one side (an image without a lesion id alone)."""
        if pool.groups is None:
            raise DataError(f"split {self.scheme!r} keeps each lesion on one side, but '{self.root / METADATA}' "
                            f"(which holds the lesion ids) is missing. {HINT}")
        alone = [group or f"image:{image}" for group, image in zip(pool.groups, pool.ids, strict=True)]
        return super().split_indices(replace(pool, groups=alone))

    def patient_metadata(self, split: str) -> pd.DataFrame:
        """``age`` (``age_approx``), ``sex`` and ``localization`` (``anatom_site_general``) of ``split``'s
        images from the metadata CSV (NaN or ``unknown`` where empty); no columns without the file."""
        metadata = self.read_metadata()
        if metadata is None:
            return super().patient_metadata(split)
        frame = patient_fields(metadata.index.tolist(), str(self.root / METADATA), sex=metadata.sex,
                           age=metadata.age_approx, localization=metadata.anatom_site_general)
        return patient_rows(frame, self.table(split).ids)

    def submission(self, ids: list[str], probabilities: np.ndarray) -> pd.DataFrame:
        """The official ISIC 2019 submission ``image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK``: the eight classes'
        probabilities and UNK at 0.0 (the model has no such class, so UNK is never its argmax)."""
        frame = super().submission(ids, probabilities)
        frame[UNKNOWN_CATEGORY] = 0.0
        return frame


class ISIC2019Dataset(PooledDataset):
    """ISIC 2019, one split, as a plain torch ``Dataset``; keyword arguments go to :class:`ISIC2019Reader`; ``scheme``
    is the reader's ``split`` (the split scheme), ``fold`` its fold.

    Items as :class:`~datamodules.datasets.reader.ReaderDataset` gives them.
    """

    reader_class = ISIC2019Reader
