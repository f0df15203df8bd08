"""One reader for every published layout of an ISIC classification ground-truth CSV (``dermlab score`` and the
ISIC 2018 task 3, 2019 and 2020 datamodules read truths through it).

Layouts, told apart by the header:

* ISIC 2016 Part 3: headerless ``ISIC_xxxxxxx,benign|malignant`` (training) or ``ISIC_xxxxxxx,0.0|1.0`` (test);
  one category, ``malignant``.
* ISIC 2017 Part 3: ``image_id,melanoma,seborrheic_keratosis``, 0.0/1.0.
* ISIC 2018 task 3 (challenge layout): ``image,MEL,NV,BCC,AKIEC,BKL,DF,VASC`` one-hot, optionally
  ``score_weight`` / ``validation_weight``.
* ISIC 2018 task 3 as published with HAM10000 (Harvard Dataverse; also the HAM10000 metadata itself):
  ``lesion_id,image_id,dx,dx_type,age,sex,localization[,dataset]``. One-hot from ``dx`` (mel → MEL, …);
  ``lesion_id`` gives the groups and ``dx_type`` the confirmation; a row whose ``dataset`` is empty gets score
  weight 0 (in the 2018 test truth that is ISIC_0035068, which ``isic-challenge-scoring`` weighs 0).
* ISIC 2019: ``image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK`` one-hot (the training truth marks no image UNK; values
  ``0.0``/``1.0``, or ``0``/``1`` in re-saved copies), optionally ``score_weight``; ids may carry the
  ``_downsampled`` suffix of the file names (``ISIC_0000017_downsampled``). The submission holds all nine columns.
* ISIC 2020: ``image_name,patient_id,...,target`` (``ISIC_2020_Training_GroundTruth.csv``; the ``_v2`` file adds
  ``lesion_id``): one category, ``target`` (1 = melanoma); ``patient_id`` gives the groups. The submission is
  ``image_name,target`` (the challenge's format on Kaggle; ``isic-challenge-scoring`` itself names the id column
  ``image``).
* ISIC 2024 (SLICE-3D, Kaggle): any CSV with ``isic_id`` and ``target`` (0/1, 1 = malignant): the competition's
  two-column solution ``isic_id,target`` or ``train-metadata.csv`` itself (55 columns); one category, ``target``;
  ``patient_id`` gives the groups where present. The primary metric is the partial AUC above 80 % TPR
  (:mod:`dermlab.challenge.partial_auc`); ``isic-challenge-scoring`` has no 2024 scorer.

Like the official scorer, ISIC_0035068 gets weight 0 in every layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from dermlab.challenge.submissions import SubmissionLayout
from dermlab.errors import DataError
from dermlab.files.tables import read_header, read_table

ISIC2018_CATEGORIES = ("MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC")
ISIC2017_CATEGORIES = ("melanoma", "seborrheic_keratosis")
ISIC2019_CATEGORIES = ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK")
ISIC2020_COLUMNS = ("image_name", "target")  # the columns the ISIC 2020 layout needs (also its submission's)
ISIC2024_CATEGORIES = ("target",)
ISIC2024_COLUMNS = ("isic_id", "target")  # the solution's columns (train-metadata.csv has them too)
HAM_COLUMNS = ("image_id", "lesion_id", "dx")  # the columns the HAM10000 layout needs
ZERO_WEIGHT_IMAGES = ("ISIC_0035068",)  # weight 0 in isic-challenge-scoring (2018 test set)
WEIGHT_COLUMNS = ("score_weight", "validation_weight")

SUBMISSIONS = {
    "isic2016": SubmissionLayout("image", ("malignant",), headerless=True),
    "isic2017": SubmissionLayout("image_id", ISIC2017_CATEGORIES),
    "isic2018": SubmissionLayout("image", ISIC2018_CATEGORIES),
    "isic2019": SubmissionLayout("image", ISIC2019_CATEGORIES),
    "isic2020": SubmissionLayout(ISIC2020_COLUMNS[0], ISIC2020_COLUMNS[1:]),
    "ham10000": SubmissionLayout("image", ISIC2018_CATEGORIES),  # scored as ISIC 2018 task 3
    # Kaggle's 2024 scorer takes any numeric column, integers too ("Submission target column must be numeric")
    "isic2024": SubmissionLayout("isic_id", ISIC2024_CATEGORIES, integers=True),
}


@dataclass
class Truth:
    """A ground truth: ``labels`` (N, C) 0.0/1.0 indexed by image id in file order, every row (weight 0 too);
    ``weights`` (N,) score weights 0 or 1; ``groups`` lesion ids where the file has them (ISIC 2020: patient ids);
    ``extra`` per-image columns (``dx_type``)."""

    layout: str
    path: Path
    labels: pd.DataFrame
    weights: pd.Series
    groups: list[str] | None = None
    extra: dict[str, list] = field(default_factory=dict)

    @property
    def one_hot(self) -> bool:
        """Whether the layout is one-hot (ISIC 2018 task 3, HAM10000, ISIC 2019), each image in exactly one
        category, so that ``dermlab score`` adds ``balanced_accuracy`` and the ``multiclass`` metrics."""
        return self.layout in ("isic2018", "ham10000", "isic2019")

    @property
    def submission(self) -> SubmissionLayout:
        """The submission layout scored against this truth."""
        return SUBMISSIONS[self.layout]

    @property
    def scored(self) -> pd.DataFrame:
        """The labels of the images that count (weight > 0)."""
        return self.labels[self.weights.to_numpy() > 0]


def _layout(path: Path, fields: list[str]) -> str:
    """The layout of a truth from the fields of its first line (spaces removed)."""
    if fields and fields[0].startswith("ISIC_"):
        return "isic2016"
    columns = set(fields)
    if {"image_id", *ISIC2017_CATEGORIES} <= columns:
        return "isic2017"
    if {"image", *ISIC2019_CATEGORIES} <= columns:
        return "isic2019"
    if {*ISIC2020_COLUMNS} <= columns:
        return "isic2020"
    if {"image", *ISIC2018_CATEGORIES} <= columns:
        return "isic2018"
    if {*HAM_COLUMNS} <= columns:
        return "ham10000"
    if {*ISIC2024_COLUMNS} <= columns:
        return "isic2024"
    raise DataError(f"cannot tell the layout of '{path}' from its header {','.join(fields)!r}; expected ISIC 2016 "
                    "(no header), "
                    f"2017 (image_id,{','.join(ISIC2017_CATEGORIES)}), 2018 (image,{','.join(ISIC2018_CATEGORIES)}), "
                    f"2019 (image,{','.join(ISIC2019_CATEGORIES)}), 2020 (image_name,patient_id,...,target), "
                    "2024 (isic_id,target or train-metadata.csv) "
                    "or HAM10000 (lesion_id,image_id,dx,dx_type,age,sex,localization,dataset).")


def _from_dx(path: Path, table: pd.DataFrame) -> pd.DataFrame:
    codes = {c.lower(): c for c in ISIC2018_CATEGORIES}
    dx = table.dx.str.strip().str.lower()
    unknown = ~dx.isin(list(codes))
    if unknown.any():
        row = int(unknown.to_numpy().nonzero()[0][0])
        raise DataError(f"'{path}' row {row + 2} ({table.image_id.iloc[row]}) has dx {table.dx.iloc[row]!r}; "
                        f"expected one of {list(codes)}.")
    return pd.DataFrame({name: (dx == code).astype(float).to_numpy() for code, name in codes.items()},
                        index=table.image_id.to_numpy())


def read_truth(path: str | Path, hint: str = "") -> Truth:
    """Read a ground-truth CSV in any layout of the module docstring (``hint``: appended to a missing file's error),
    as spreadsheets and archives export it (:mod:`dermlab.files.tables`: byte-order mark, CRLF, spaces around ids
    and names removed; ``<name>.tab`` read where ``<name>.csv`` is absent, and ``path`` is then the ``.tab``).

    Raises:
        DataError: the file is missing, its layout unknown, a column or row malformed (named), a label outside
            {0.0, 1.0}, an unknown ``dx``, or a score weight other than 0 and 1; what
            :func:`dermlab.files.tables.read_table` refuses (a European-locale export, an id empty or listed twice).
    """
    path, fields = read_header(path, "ground-truth file", hint)
    layout = _layout(path, fields)
    groups, extra = None, {}
    if layout == "isic2016":
        table = read_table(path, ("image", "malignant"), header=False)
        table["malignant"] = table["malignant"].str.strip().replace({"benign": "0.0", "malignant": "1.0"})
        id_column, categories = "image", ("malignant",)
    elif layout == "ham10000":
        table = read_table(path, HAM_COLUMNS)
        id_column, categories = "image_id", ISIC2018_CATEGORIES
        groups = table.lesion_id.tolist()
        if "dx_type" in table.columns:
            extra["dx_type"] = table.dx_type.tolist()
    elif layout == "isic2020":
        table = read_table(path, ISIC2020_COLUMNS)
        id_column, categories = ISIC2020_COLUMNS[0], ISIC2020_COLUMNS[1:]
        if "patient_id" in table.columns:
            groups = table.patient_id.fillna("").str.strip().tolist()
    elif layout == "isic2024":  # only the columns scored (train-metadata.csv has 55, 401,059 rows)
        table = read_table(path, ISIC2024_COLUMNS, optional=("patient_id",))
        id_column, categories = ISIC2024_COLUMNS[0], ISIC2024_CATEGORIES
        if "patient_id" in table.columns:
            groups = table.patient_id.tolist()
    else:
        id_column, categories = {"isic2017": ("image_id", ISIC2017_CATEGORIES),
                                 "isic2019": ("image", ISIC2019_CATEGORIES)}.get(layout, ("image", ISIC2018_CATEGORIES))
        table = read_table(path, (id_column, *categories))
    ids = table[id_column].str.strip()
    if layout == "ham10000":
        labels = _from_dx(path, table)
    else:
        labels = table[list(categories)].apply(pd.to_numeric, errors="coerce").set_axis(ids.to_numpy(), axis=0)
    bad = ~labels.isin([0.0, 1.0]).all(axis=1).to_numpy()
    if bad.any():
        row = int(bad.nonzero()[0][0])
        raise DataError(f"'{path}' row {row + (1 if layout == 'isic2016' else 2)} ({ids.iloc[row]}) holds a label "
                        "outside {0.0, 1.0} (or benign/malignant for ISIC 2016).")
    weights = (pd.to_numeric(table["score_weight"], errors="coerce") if "score_weight" in table.columns
               else pd.Series(1.0, index=table.index)).set_axis(ids.to_numpy())
    if layout == "ham10000" and "dataset" in table.columns:
        weights[table["dataset"].fillna("").str.strip().eq("").to_numpy()] = 0.0
    weights[weights.index.isin(ZERO_WEIGHT_IMAGES)] = 0.0
    if not weights.isin([0.0, 1.0]).all():
        raise DataError(f"'{path}' has score weights other than 0 and 1, which this scorer does not support.")
    return Truth(layout, path, labels, weights, groups, extra)
