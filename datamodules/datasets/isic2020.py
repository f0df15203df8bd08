"""ISIC 2020 (Rotemberg et al. 2021): melanoma vs benign, 33,126 training images of 2,056 patients.

Download from https://challenge.isic-archive.com/data/#2020 (the JPEG training images, the ground truth and the
duplicates list) and keep the files as they unpack::

    ROOT/train/ISIC_2637011.jpg ...                 (ISIC_2020_Training_JPEG.zip)
    ROOT/ISIC_2020_Training_GroundTruth.csv         image_name,patient_id,sex,age_approx,
                                                    anatom_site_general_challenge,diagnosis,benign_malignant,target
    ROOT/ISIC_2020_Training_GroundTruth_v2.csv      the same with lesion_id after patient_id (read when present)
    ROOT/ISIC_2020_Training_Duplicates.csv          image_name_1,image_name_2 (425 pairs)

Classes: benign (``target`` 0) and melanoma (``target`` 1; every malignant image of the set is a melanoma). The test
truth was not released with the data, so the test split comes from the training images: ``split: kfold`` (default),
patient-grouped stratified K-fold on ``patient_id`` (test = fold ``fold``, validation = fold ``fold + 1 mod
n_folds``), so that no patient, and hence no lesion, has images on two sides; ``patch`` and ``weighting`` work as for
HAM10000 (:mod:`datamodules.datasets.pooled`), grouped by patient too.

**Duplicates.** The duplicates list names pairs of files showing the same image. With ``drop_duplicates`` (default)
one image of each is kept: the pairs are joined into groups of copies (a chain a = b, b = c is one group) and the
image listed first in the ground truth stays. The split audit reads the list from ROOT as well, so a pair that
straddles two splits (``drop_duplicates: false``) is reported as a leak.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from typing_extensions import override

from datamodules.audit import read_duplicate_pairs
from datamodules.datasets.pooled import PooledDataset, PooledReader
from datamodules.datasets.table import ImageTable
from dermlab.errors import DataError
from dermlab.files.io import binary_column, image_paths, read_table, require_dir
from dermlab.files.metadata import patient_fields, patient_rows

log = logging.getLogger(__name__)

CLASSES = ("benign", "melanoma")
IMAGES = "train"
TRUTHS = ("ISIC_2020_Training_GroundTruth_v2.csv", "ISIC_2020_Training_GroundTruth.csv")  # the first present is read
DUPLICATES = "ISIC_2020_Training_Duplicates.csv"
COLUMNS = ("image_name", "patient_id", "target")
HINT = ("Download ISIC 2020 from https://challenge.isic-archive.com/data/#2020 or write a synthetic copy with "
        "`dermlab synth --dataset isic2020 --out DIR`.")


def copies_to_drop(ids: list[str], pairs: list[tuple[str, str]]) -> list[int]:
    """Positions in ``ids`` of the images to leave out so that one of each group of copies stays.

    ``pairs`` (a duplicates list) are joined into groups (union-find: a = b and b = c make one group); in each
    group the image that comes first in ``ids`` stays. Pairs naming an id that is not in ``ids`` are ignored.
    """
    position = {image: i for i, image in enumerate(ids)}
    parent = list(range(len(ids)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in pairs:
        if a in position and b in position:
            ra, rb = root(position[a]), root(position[b])
            parent[max(ra, rb)] = min(ra, rb)  # the earlier image becomes the group's root, and stays
    return [i for i in range(len(ids)) if root(i) != i]


class ISIC2020Reader(PooledReader):
    """ISIC 2020 training data split by patient-grouped folds (``split``, ``fold``, ``n_folds``: see
    :class:`~datamodules.datasets.pooled.PooledReader`; ``official`` and ``holdout`` need a released test truth and are
    refused).

    Args:
        drop_duplicates: leave out all but one image of each group of copies in ``ISIC_2020_Training_Duplicates.csv``
            (module docstring; ``duplicates_csv`` names another copy of the list); needs the file.
        **kwargs: the further arguments of :class:`~datamodules.datasets.pooled.PooledReader` (``split``,
            ``fold``, ``seed``, ...) or, in a data module, of :class:`~datamodules.base.SkinDataModule`.
    """

    class_names = CLASSES

    def __init__(self, root: str, drop_duplicates: bool = True, **kwargs: Any) -> None:
        super().__init__(root, **kwargs)
        self.drop_duplicates = drop_duplicates

    @property
    def truth_path(self) -> Path:
        """The ground truth read, the ``_v2`` file where present, else the first release."""
        return next((self.root / name for name in TRUTHS if (self.root / name).is_file()), self.root / TRUTHS[-1])

    @override
    def read_pool(self) -> ImageTable:
        """Every training image of :attr:`truth_path`, grouped by ``patient_id``, less the copies of
        ``drop_duplicates``.

        Raises:
            DataError: a missing or malformed file, or ``drop_duplicates`` without the duplicates list.
        """
        require_dir(self.root, "data root", HINT)
        table = self.read_ground_truth(self.truth_path, self.root / IMAGES)
        if not self.drop_duplicates:
            return table
        duplicates = self.duplicates_csv or self.root / DUPLICATES  # the list the split audit applies too
        if not duplicates.is_file():
            raise DataError(f"drop_duplicates needs '{duplicates}' (image_name_1,image_name_2); download it with the "
                            "ground truth, or set drop_duplicates: false (the split audit then still reports copies "
                            "that straddle splits, by their pixels).")
        dropped = copies_to_drop(table.ids, read_duplicate_pairs(duplicates))
        log.info("ISIC 2020: left out %d image(s) that duplicate another one ('%s'); %d remain", len(dropped),
                 duplicates, len(table) - len(dropped))
        return table.subset(np.setdiff1d(np.arange(len(table)), dropped))

    def read_ground_truth(self, csv: Path, images: Path) -> ImageTable:
        """A truth in the ISIC 2020 layout with its images in ``images`` (also the ``extra_train_csv`` layout):
        labels from ``target``, groups from ``patient_id``; the ``_v2`` file's ``lesion_id`` is kept as an extra
        column.

        Raises:
            DataError: a missing column, a ``target`` other than 0/1, an empty ``patient_id`` or a ``target`` that
                contradicts ``benign_malignant``, naming the file and row.
        """
        table = read_table(csv, COLUMNS, hint=HINT)
        labels = binary_column(table, "target", csv)
        patients = table.patient_id.fillna("").str.strip()
        if patients.eq("").any():
            row = int(np.flatnonzero(patients.eq("").to_numpy())[0])
            raise DataError(f"'{csv}' row {row + 2} ({table.image_name.iloc[row]}) has no patient_id; the folds keep "
                            "each patient on one side and need it for every image.")
        if "benign_malignant" in table.columns:
            stated = table.benign_malignant.fillna("").str.strip().str.lower()
            wrong = np.flatnonzero((stated.eq("malignant").to_numpy().astype(int) != labels) & stated.ne("").to_numpy())
            if len(wrong):
                row = int(wrong[0])
                raise DataError(f"'{csv}' row {row + 2} ({table.image_name.iloc[row]}) has target {labels[row]} but "
                                f"benign_malignant {table.benign_malignant.iloc[row]!r}; fix one of them.")
        ids = table.image_name.str.strip().tolist()
        extra = {"patient_id": patients.tolist()}
        if "lesion_id" in table.columns:
            extra["isic_lesion_id"] = table.lesion_id.fillna("").tolist()
        return ImageTable(ids, image_paths(images, ids, csv), labels, csv, groups=patients.tolist(), extra=extra)

    def patient_metadata(self, split: str) -> pd.DataFrame:
        """``age`` (``age_approx``), ``sex`` and ``localization`` (``anatom_site_general_challenge``) of
        ``split``'s images from the ground truth (NaN or ``unknown`` where empty)."""
        csv = self.truth_path
        table = read_table(csv, ("image_name",), hint=HINT)
        columns = {"sex": "sex", "age": "age_approx", "localization": "anatom_site_general_challenge"}
        frame = patient_fields(table.image_name.tolist(), str(csv),
                           **{name: table[column] for name, column in columns.items() if column in table.columns})
        return patient_rows(frame, self.table(split).ids)

    def submission(self, ids: list[str], probabilities: np.ndarray) -> pd.DataFrame:
        """The ISIC 2020 submission ``image_name,target``: P(melanoma) per image."""
        return pd.DataFrame({"image_name": ids, "target": probabilities[:, 1]})


class ISIC2020Dataset(PooledDataset):
    """ISIC 2020, one split, as a plain torch ``Dataset``; keyword arguments go to :class:`ISIC2020Reader`; ``scheme``
    is the reader's ``split`` (the split scheme), ``fold`` its fold.

    Items as :class:`~datamodules.datasets.reader.ReaderDataset` gives them.
    """

    reader_class = ISIC2020Reader
