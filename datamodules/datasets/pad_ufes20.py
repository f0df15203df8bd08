"""PAD-UFES-20 (Pacheco et al. 2020): 2,298 smartphone clinical images of 1,641 skin lesions of 1,373 patients, six
diagnoses, with patient metadata and the Fitzpatrick skin type.

Pacheco AGC et al., *PAD-UFES-20: A skin lesion dataset composed of patient data and clinical images collected from
smartphones*, Data in Brief 32:106221 (2020), doi:10.1016/j.dib.2020.106221; the data: Mendeley Data,
doi:10.17632/zr7vgbcyr2.1 (https://data.mendeley.com/datasets/zr7vgbcyr2/1), licensed CC BY 4.0. Download it and
unpack it with its three image archives::

    ROOT/metadata.csv                          patient_id,lesion_id,smoke,drink,background_father,background_mother,
                                               age,pesticide,gender,skin_cancer_history,cancer_history,has_piped_water,
                                               has_sewage_system,fitspatrick,region,diameter_1,diameter_2,diagnostic,
                                               itch,grew,hurt,changed,bleed,elevation,img_id,biopsed
    ROOT/images/imgs_part_1/PAT_1516_1765_530.png ...    (imgs_part_1.zip; likewise imgs_part_2/, imgs_part_3/)

The images are found wherever they lie under ROOT (``ROOT/imgs_part_1/...`` or all in one ``ROOT/images/`` read
too): every folder below ROOT is listed once, and each ``img_id`` is looked up by name; one listed twice (two copies
in two folders) is refused, naming both. Image ids are the ``img_id`` without ``.png`` (``PAT_1516_1765_530``).

Classes: the ``diagnostic`` column, ACK (actinic keratosis), BCC, MEL, NEV (nevus), SCC (squamous cell carcinoma,
Bowen's disease counted in it, as released), SEK (seborrheic keratosis). No test split is released: ``split: kfold``
(default) is patient-grouped stratified K-fold on ``patient_id``, like ISIC 2020's, so no patient (and no lesion) has
images on two sides; ``patch`` and ``weighting`` are grouped by patient too; ``external`` makes every image a test
image, for testing a model trained elsewhere (``test_on``; a HAM10000-class model scores MEL, NV, BCC, AKIEC = ACK +
SCC and BKL = SEK, :mod:`datamodules.taxonomies`).

Metadata: ``age`` (years), ``sex`` (``gender``, lower-cased) and ``localization`` (``region``, lower-cased) feed the
metadata branch and the subgroup metrics; the subgroup metrics add ``fitzpatrick`` (I–VI) and ``fitzpatrick_group``
(I-II, III-IV, V-VI) from ``fitspatrick`` (the release's spelling; empty, i.e. ``unknown``, for the patients whose
extended data were not collected).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
from typing_extensions import override

from datamodules.datasets.pooled import PooledDataset, PooledReader
from datamodules.datasets.table import ImageTable
from dermlab.errors import DataError
from dermlab.files.io import read_table, require_dir
from dermlab.files.listing import IMAGE_SUFFIXES, MAC_FOLDER, images_by_stem
from dermlab.files.metadata import UNKNOWN, for_images, group_value, patient_fields, patient_rows
from dermlab.files.skin_type import GROUP, TYPE, fitzpatrick_group, fitzpatrick_type

log = logging.getLogger(__name__)

CLASSES = ("ACK", "BCC", "MEL", "NEV", "SCC", "SEK")
METADATA = "metadata.csv"
#: The release's 26 columns, in order (the synthetic twin writes them all).
RELEASE_COLUMNS = ("patient_id", "lesion_id", "smoke", "drink", "background_father", "background_mother", "age",
                   "pesticide", "gender", "skin_cancer_history", "cancer_history", "has_piped_water",
                   "has_sewage_system", "fitspatrick", "region", "diameter_1", "diameter_2", "diagnostic", "itch",
                   "grew", "hurt", "changed", "bleed", "elevation", "img_id", "biopsed")
COLUMNS = ("img_id", "patient_id", "lesion_id", "diagnostic")  # what the reader needs; img_id is the id column
SKIN_TYPE_COLUMNS = ("fitspatrick", "fitzpatrick")  # the release's spelling first; a corrected copy's is read too
#: The patient fields (:data:`~dermlab.files.metadata.PATIENT_FIELDS`) and the release column each comes from.
PATIENT_COLUMNS = {"age": "age", "sex": "gender", "localization": "region"}
HINT = ("Download PAD-UFES-20 from https://data.mendeley.com/datasets/zr7vgbcyr2/1 (unzip the image parts too) or "
        "write a synthetic copy with `dermlab synth --dataset pad_ufes20 --out DIR`.")


def image_id(img_id: str) -> str:
    """The suite's image id of an ``img_id``: the name without its image suffix (``PAT_1_1_1.png`` → ``PAT_1_1_1``)."""
    path = Path(img_id)
    return path.stem if path.suffix.lower() in IMAGE_SUFFIXES else img_id


def index_images(root: Path) -> dict[str, list[Path]]:
    """Every image under ``root``, by image id (file name without suffix): the folders below ``root`` listed once
    each (links followed, each real folder once; hidden folders and ``__MACOSX`` left out). An id with two paths is
    a copy in two folders (e.g. ``images/imgs_part_1/`` and a merged ``images/``); within one folder the suffix
    :func:`~dermlab.files.listing.images_by_stem` prefers wins."""
    found: dict[str, list[Path]] = {}
    seen: set[str] = set()
    for folder, subfolders, _ in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            subfolders[:] = []
            continue
        seen.add(real)
        subfolders[:] = sorted(s for s in subfolders if not s.startswith(".") and s != MAC_FOLDER)
        for stem, path in images_by_stem(Path(folder)).items():
            found.setdefault(stem, []).append(path)
    return found


def skin_types(table: pd.DataFrame, csv: Path) -> list[str]:
    """The Fitzpatrick type (``I`` … ``VI``, ``unknown`` where empty) of each row of the release's ``metadata.csv``
    from its ``fitspatrick`` column (``1``–``6``, also as ``3.0``); all ``unknown`` without the column.

    Raises:
        DataError: a value that is neither empty nor a type 1–6, naming the file, the row (index + 2), the image and
            the value.
    """
    column = next((c for c in SKIN_TYPE_COLUMNS if c in table.columns), None)
    if column is None:
        return [UNKNOWN] * len(table)
    types = []
    for row, value in enumerate(table[column]):
        try:
            kind = fitzpatrick_type(value)
            if kind == UNKNOWN and group_value(value) != UNKNOWN:  # -1 or 0: not a value of this release
                raise ValueError(value)
        except ValueError:
            raise DataError(f"'{csv}' row {row + 2} ({table.img_id.iloc[row]}): {column} {value!r} is not a "
                            "Fitzpatrick type 1–6; give 1 to 6 or leave it empty (unknown).") from None
        types.append(kind)
    return types


class PADUFES20Reader(PooledReader):
    """PAD-UFES-20 split by patient-grouped folds (``split``, ``fold``, ``n_folds``: see
    :class:`~datamodules.datasets.pooled.PooledReader`; ``split: external`` makes every image a test image and
    refuses training; ``official`` and ``holdout`` need a released test set and are refused).

    Args:
        root: the folder holding ``metadata.csv`` and the images (see the module).
        **kwargs: the further arguments of :class:`~datamodules.datasets.pooled.PooledReader` (``split``,
            ``fold``, ``seed``, ...) or, in a data module, of :class:`~datamodules.base.SkinDataModule`.
    """

    class_names = CLASSES

    @property
    def metadata_path(self) -> Path:
        """``ROOT/metadata.csv``, the release's one table."""
        return self.root / METADATA

    @override
    def read_pool(self) -> ImageTable:
        """Every image of ``metadata.csv``: labels from ``diagnostic``, groups from ``patient_id``; ``extra`` keeps
        the ``patient_id``, the release's ``lesion_id`` (as ``pad_lesion_id``), ``biopsed`` and the skin type.

        Raises:
            DataError: a missing file or column, a ``diagnostic`` other than the six, an empty ``patient_id``, a
                ``lesion_id`` under two patients, a ``fitspatrick`` other than 1–6 or empty (each naming the file,
                row and value), no image under ROOT, or an image found in two folders (naming both).
        """
        require_dir(self.root, "data root", HINT)
        table = read_table(self.metadata_path, COLUMNS, hint=HINT, what="metadata file")
        csv = table.attrs["path"]
        diagnoses = table.diagnostic.fillna("")
        wrong = np.flatnonzero(~diagnoses.isin(CLASSES).to_numpy())
        if len(wrong):
            row = int(wrong[0])
            value = f"diagnostic {diagnoses.iloc[row]!r}" if diagnoses.iloc[row] else "an empty diagnostic"
            raise DataError(f"'{csv}' row {row + 2} ({table.img_id.iloc[row]}) has {value}; expected one of "
                            f"{', '.join(CLASSES)} (Bowen's disease is SCC in the release)"
                            f"{f'; {len(wrong)} rows are affected' if len(wrong) > 1 else ''}.")
        patients = table.patient_id.fillna("")
        if patients.eq("").any():
            row = int(np.flatnonzero(patients.eq("").to_numpy())[0])
            raise DataError(f"'{csv}' row {row + 2} ({table.img_id.iloc[row]}) has no patient_id; the folds keep "
                            "each patient on one side and need it for every image.")
        lesions = table.lesion_id.fillna("")
        owners = pd.DataFrame({"lesion": lesions, "patient": patients}).groupby("lesion").patient.nunique()
        shared = [lesion for lesion, count in owners.items() if count > 1 and lesion != ""]
        if shared:
            rows = np.flatnonzero(lesions.eq(shared[0]).to_numpy())
            raise DataError(f"'{csv}' lists lesion_id {shared[0]!r} under patients "
                            f"{sorted(set(patients.iloc[rows]))} (rows {', '.join(str(r + 2) for r in rows)}); a "
                            "lesion belongs to one patient.")
        types = skin_types(table, csv)
        ids = [image_id(i) for i in table.img_id]
        paths = self.locate_images(ids, table.img_id.tolist(), csv)
        labels = np.array([CLASSES.index(d) for d in diagnoses], dtype=np.int64)
        extra = {"patient_id": patients.tolist(), "pad_lesion_id": lesions.tolist(), TYPE: types}
        if "biopsed" in table.columns:
            extra["biopsed"] = table.biopsed.fillna("").tolist()
        return ImageTable(ids, paths, labels, csv, groups=patients.tolist(), extra=extra)

    def locate_images(self, ids: list[str], names: list[str], csv: Path) -> list[Path]:
        """The file of each image id wherever it lies under ROOT (:func:`index_images`, listed once); an absent one
        gets ``ROOT/<img_id>``, which set-up reports (``on_bad_image``).

        Raises:
            DataError: no image under ROOT at all, or an image of ``csv`` found in two folders (naming both).
        """
        found = index_images(self.root)
        if not found:
            raise DataError(f"no images ({'/'.join(IMAGE_SUFFIXES)}) under '{self.root}' (nor in any folder below "
                            f"it); it should hold the images listed in '{csv}' (images/imgs_part_1/ ... as "
                            f"unzipped). {HINT}")
        paths = []
        for image, name in zip(ids, names, strict=True):
            where = found.get(image, [])
            if len(where) > 1:
                raise DataError(f"'{name}' (listed in '{csv}') is under '{self.root}' twice: '{where[0]}' and "
                                f"'{where[1]}'; keep one copy of the images (the three imgs_part_* folders, or one "
                                "merged folder), not both.")
            paths.append(where[0] if where else self.root / name)
        return paths

    def release_table(self) -> tuple[pd.DataFrame, Path, list[str]]:
        """``metadata.csv`` as read (every column text), the file read and the image id of each row."""
        table = read_table(self.metadata_path, ("img_id",), hint=HINT, what="metadata file")
        return table, table.attrs["path"], [image_id(i) for i in table.img_id]

    @override
    def patient_metadata(self, split: str) -> pd.DataFrame:
        """``age`` (years), ``sex`` (``gender``: ``FEMALE`` / ``MALE`` → ``female`` / ``male``) and ``localization``
        (``region`` lower-cased: ``FACE`` → ``face``) of ``split``'s images from ``metadata.csv``; NaN or ``unknown``
        where empty (``gender`` is empty for the patients without extended data).

        Raises:
            DataError: an age that is neither empty nor a number ≥ 0, naming the file, row and image.
        """
        table, csv, ids = self.release_table()
        columns = {name: table[column].str.lower() if name != "age" else table[column]
                   for name, column in PATIENT_COLUMNS.items() if column in table.columns}
        frame = patient_fields(ids, str(csv), **columns)
        return patient_rows(frame, self.table(split).ids)

    @override
    def metadata(self, split: str) -> pd.DataFrame:
        """The subgroup attributes of ``split`` (:meth:`~datamodules.datasets.reader.SplitReader.metadata`: ``sex``,
        ``age_band``, ``localization``) and the skin type: ``fitzpatrick`` (``I`` … ``VI``) and
        ``fitzpatrick_group`` (``I-II``, ``III-IV``, ``V-VI``) from ``fitspatrick``, ``unknown`` where empty.

        Raises:
            DataError: a ``fitspatrick`` other than 1–6 or empty, naming the file, row and value.
        """
        frame = super().metadata(split)
        table, csv, ids = self.release_table()
        types = for_images(pd.DataFrame({TYPE: skin_types(table, csv)}, index=pd.Index(ids, name="image_id")),
                           frame.index.tolist())
        frame[TYPE] = types[TYPE].tolist()
        frame[GROUP] = [fitzpatrick_group(t) for t in frame[TYPE]]
        return frame


class PADUFES20Dataset(PooledDataset):
    """PAD-UFES-20, one split, as a plain torch ``Dataset``; keyword arguments go to :class:`PADUFES20Reader`;
    ``scheme`` is the reader's ``split`` (the split scheme: ``external`` serves every image as ``test``), ``fold`` its
    fold.

    Items as :class:`~datamodules.datasets.reader.ReaderDataset` gives them.
    """

    reader_class = PADUFES20Reader
