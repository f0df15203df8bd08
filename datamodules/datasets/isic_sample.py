"""The shipped real sample: 275 CC0 ISIC-archive images (UDA-1) read as ISIC 2017 Part 3, melanoma vs rest.

``data_samples/isic_uda1/`` holds ISIC_0000000 … ISIC_0000274 (250 × 250 px JPEG, downscaled from about
1022 × 767 without keeping the aspect ratio) with their ISIC-Archive JSON records (see its README.md for the
source, attribution and the CC0 licence). The label is ``meta.clinical.diagnosis``: ``melanoma`` is class 1,
everything else (215 nevi and one benign record without a diagnosis, ISIC_0000257) class 0, as the
ISIC 2017 melanoma task counts "rest". Counts: 216 other, 59 melanoma.

Known defect of the shipped copy (``data_samples/isic_uda1/README.md``): in 102 files every row of pixels is the
same (vertical colour stripes, no lesion). :func:`has_identical_rows` finds them by their pixels and the reader
leaves them out with one log line, so the data set is the 173 intact images (135 other, 38 melanoma); an intact
replacement of a file is used as soon as it is in the folder.

The archive records hold no lesion or patient id, so the split cannot be grouped; it is a FIXED stratified
60 / 20 / 20 train / val / test split of the intact images (:data:`SPLIT_SEED`, independent of the run's ``seed``):
five stratified parts (:func:`datamodules.splits.stratified_parts`), parts 0–2 training, part 3 validation, part 4
(the last) test.
Every run, whatever its seed, trains and tests on the same images; the split audit checks them like any
other data set's. Submissions are written in the official ISIC 2017 layout
(:class:`~datamodules.datasets.isic2017.ISIC2017Reader`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import albumentations as A
import numpy as np
import pandas as pd
from typing_extensions import override

from datamodules import splits
from datamodules.datasets.isic2017 import ISIC2017Reader
from datamodules.datasets.reader import ReaderDataset, SplitReader
from datamodules.datasets.table import ImageTable, shortlist
from dermlab.errors import DataError
from dermlab.files.io import load_rgb, require_dir
from dermlab.files.metadata import patient_fields, patient_rows

log = logging.getLogger(__name__)
SAMPLE_ROOT = Path(__file__).resolve().parents[2] / "data_samples" / "isic_uda1"
#: The seed of the fixed split (the same for every run).
SPLIT_SEED = 2017
PARTS = 5  # 3 training parts, 1 validation part, 1 test part: 60 / 20 / 20
STRIPE_STD = 1.0  #: grey levels; the damaged files measure 0.0 down every column, the intact ones at least 3.4
HINT = "The sample ships with the repository under data_samples/isic_uda1/; restore it with `git checkout`."


def read_records(root: Path) -> pd.DataFrame:
    """One row per ``ISIC_*.json`` record in ``root``, sorted by id: ``image_id, melanoma (0/1), diagnosis,
    benign_malignant, diagnosis_confirm_type, age_approx, sex``.

    Raises:
        DataError: no records, a file that is not JSON, or a record whose ``name`` differs from its file name.
    """
    require_dir(root, "sample folder", HINT)
    rows = []
    for path in sorted(root.glob("ISIC_*.json")):
        try:
            record = json.loads(path.read_text())
            clinical = record["meta"]["clinical"]
        except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as error:
            raise DataError(f"'{path}' is not an ISIC-Archive record with meta.clinical ({error!r}).") from None
        if record.get("name") != path.stem:
            raise DataError(f"'{path}' describes {record.get('name')!r}, not {path.stem}; the file name must be the "
                            "record's name.")
        diagnosis = clinical.get("diagnosis") or ""
        rows.append({"image_id": path.stem, "melanoma": int(diagnosis == "melanoma"), "diagnosis": diagnosis,
                     "benign_malignant": clinical.get("benign_malignant") or "",
                     "diagnosis_confirm_type": clinical.get("diagnosis_confirm_type") or "",
                     "age_approx": clinical.get("age_approx"), "sex": clinical.get("sex") or ""})
    if not rows:
        raise DataError(f"no ISIC_*.json records in '{root}'. {HINT}")
    return pd.DataFrame(rows)




def has_identical_rows(path: Path) -> bool:
    """Whether every row of pixels of the image at ``path`` is the same (up to JPEG noise): no column's grey
    level varies by a standard deviation of :data:`STRIPE_STD` or more from top to bottom. Such an image is a
    single row stretched over the height (vertical stripes), as in 102 of the shipped sample's files."""
    grey = load_rgb(path).astype(np.float64).mean(axis=2)  # (H, W)
    return bool(grey.std(axis=0).max() < STRIPE_STD)


def split_of(labels: np.ndarray) -> dict[str, np.ndarray]:
    """The fixed stratified 60 / 20 / 20 split of the sample: ``{split: sorted indices}``."""
    return splits.stratified_parts(labels, fold=PARTS - 2, seed=SPLIT_SEED, parts=PARTS)


class ISICSampleReader(ISIC2017Reader):
    """The shipped 275-image CC0 sample as ISIC 2017 Part 3's melanoma task (classes ``other``, ``melanoma``).

    Args:
        root: the sample folder (default: the repository's ``data_samples/isic_uda1``).
        **kwargs: as :class:`datamodules.datasets.reader.SplitReader` (a data module's also as
            :class:`datamodules.base.SkinDataModule`); ``seed`` seeds the run, not the split. ``task`` may be given,
            as ``melanoma`` only.

    Raises:
        ValueError: a ``task`` other than ``melanoma``.
    """

    def __init__(self, root: str = str(SAMPLE_ROOT), **kwargs: Any) -> None:
        task = kwargs.pop("task", "melanoma")
        if task != "melanoma":
            raise ValueError(f"the sample holds nevi and melanomas only (no seborrheic keratosis): task must be "
                             f"melanoma, got {task!r}")
        super().__init__(root, task="melanoma", **kwargs)
        self._records: pd.DataFrame | None = None

    @property
    def config_name(self) -> str:
        """``isic_sample`` (``experiments/base/data/isic_sample.yaml``; it needs no data root, so it is in no
        registry of downloaded data sets)."""
        return "isic_sample"

    def records(self) -> pd.DataFrame:
        """The JSON records (read once) with a ``split`` column: ``train`` / ``val`` / ``test``, or ``damaged`` for an
        image with identical rows (:func:`has_identical_rows`), which no split holds.

        Raises:
            DataError: a record whose image ``<id>.jpg`` is missing or cannot be decoded.
        """
        if self._records is None:
            records = read_records(self.root)
            damaged = np.array([has_identical_rows(self.root / f"{i}.jpg") for i in records.image_id])
            records["split"] = np.where(damaged, "damaged", "")
            intact = np.flatnonzero(~damaged)
            for name, index in split_of(records.melanoma.to_numpy()[intact]).items():
                records.loc[intact[index], "split"] = name
            if damaged.any():
                log.warning("left out %d of the sample's %d images whose pixel rows are all identical (stripes, not a "
                            "lesion: the shipped copy's known defect, see %s): %s; using the %d intact ones.",
                            damaged.sum(), len(records), self.root / "README.md",
                            shortlist(records.image_id[damaged].tolist(), 3), len(intact))
            self._records = records
        return self._records

    @override
    def read_split(self, split: str) -> ImageTable:
        rows = self.records()[lambda r: r.split == split]
        ids = rows.image_id.tolist()
        source = self.root / "ISIC_*.json"
        return ImageTable(ids, [self.root / f"{i}.jpg" for i in ids], rows.melanoma.to_numpy().astype(np.int64),
                          source, extra={"diagnosis": rows.diagnosis.tolist()})

    def patient_metadata(self, split: str) -> pd.DataFrame:
        """``age`` and ``sex`` of ``split``'s images from the records' ``meta.clinical.sex`` / ``age_approx``
        (77 of the 275 records have neither: ``unknown``)."""
        records = self.records()
        frame = patient_fields(records.image_id.tolist(), str(self.root / "ISIC_*.json"), sex=records.sex,
                           age=records.age_approx)
        return patient_rows(frame, self.table(split).ids)

    def ground_truth(self, split: str) -> pd.DataFrame:
        """``split``'s ground truth in the official ISIC 2017 Part 3 layout ``image_id,melanoma,seborrheic_keratosis``
        (0.0 / 1.0; the sample has no seborrheic keratosis), for scoring a submission with the official scorer."""
        rows = self.records()[lambda r: r.split == split]
        return pd.DataFrame({"image_id": rows.image_id.tolist(), "melanoma": rows.melanoma.astype(float).tolist(),
                             "seborrheic_keratosis": 0.0})


class ISICSampleDataset(ReaderDataset):
    """The shipped real ISIC-archive sample, one split, as a plain torch ``Dataset``; keyword arguments go to
    :class:`ISICSampleReader`.

    Items as :class:`~datamodules.datasets.reader.ReaderDataset` gives them.
    """

    reader_class = ISICSampleReader

    def __init__(self, root: str | Path | SplitReader = SAMPLE_ROOT, split: str = "train",
                 transform: A.Compose | None = None, image_size: int = 224, **options: Any) -> None:
        super().__init__(root, split, transform, image_size, **options)
