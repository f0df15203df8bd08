"""ISIC 2017 Part 3 (lesion classification) in its official layout.

Download from https://challenge.isic-archive.com/data/#2017 and keep the folder as is::

    ROOT/ISIC-2017_Training_Data/ISIC_0000000.jpg ...        (2000 images; *_superpixels.png ignored)
    ROOT/ISIC-2017_Validation_Data/...                        (150)
    ROOT/ISIC-2017_Test_v2_Data/...                           (600)
    ROOT/ISIC-2017_{Training,Validation,Test_v2}_Part3_GroundTruth.csv
    ROOT/ISIC-2017_*_Data/ISIC-2017_*_Data_metadata.csv       image_id,age_approximate,sex (optional: subgroups)

Ground truth: ``image_id,melanoma,seborrheic_keratosis`` with 0.0/1.0; a nevus has both 0.
The challenge scores two binary tasks (melanoma vs rest, seborrheic keratosis vs rest);
``three_class`` trains one softmax over nevus / melanoma / seborrheic keratosis instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from typing_extensions import override

from datamodules.datasets.reader import ReaderDataset, SplitReader
from datamodules.datasets.table import ImageTable
from dermlab.errors import DataError
from dermlab.files.io import binary_column, image_paths, read_table, require_dir
from dermlab.files.metadata import patient_fields, patient_rows
from dermlab.files.tables import locate

FOLDERS = {"train": "Training", "val": "Validation", "test": "Test_v2"}
COLUMNS = ("image_id", "melanoma", "seborrheic_keratosis")
HINT = ("Download ISIC 2017 Part 3 from https://challenge.isic-archive.com/data/#2017 or write a synthetic copy "
        "with `dermlab synth --dataset isic2017 --out DIR`.")

UNMODELLED_PROBABILITY = 0.5  #: the submission's value for the category a binary task does not model

#: The Part 3 task a model is trained and scored on (the ``task`` argument of :class:`ISIC2017Reader`).
Task = Literal["melanoma", "seborrheic_keratosis", "three_class"]


class ISIC2017Reader(SplitReader):
    """ISIC 2017 Part 3 with its official training, validation and test sets; ``task`` picks the binary task
    (``melanoma`` or ``seborrheic_keratosis`` vs the rest) or the three-class softmax (nevus, melanoma, seborrheic
    keratosis).

    Args:
        root: the folder as downloaded (see the module).
        task: ``melanoma``, ``seborrheic_keratosis`` or ``three_class``.
        **kwargs: the further arguments of :class:`~datamodules.datasets.reader.SplitReader` (``seed``,
            ``on_bad_image``, ...) or, in a data module, of :class:`~datamodules.base.SkinDataModule`.

    Raises:
        ValueError: an unknown ``task``.
    """

    def __init__(self, root: str, task: Task = "melanoma", **kwargs: Any) -> None:
        super().__init__(root, **kwargs)
        if task not in ("melanoma", "seborrheic_keratosis", "three_class"):
            raise ValueError(f"task must be melanoma, seborrheic_keratosis or three_class, got {task!r}")
        self.task = task
        self.class_names = {
            "melanoma": ("other", "melanoma"),
            "seborrheic_keratosis": ("other", "seborrheic_keratosis"),
            "three_class": ("nevus", "melanoma", "seborrheic_keratosis"),
        }[task]

    @override
    def read_split(self, split: str) -> ImageTable:
        require_dir(self.root, "data root", HINT)
        return self.read_ground_truth(self.root / f"ISIC-2017_{FOLDERS[split]}_Part3_GroundTruth.csv",
                                      self.root / f"ISIC-2017_{FOLDERS[split]}_Data")

    def read_ground_truth(self, csv: Path, images: Path) -> ImageTable:
        """``image_id,melanoma,seborrheic_keratosis`` rows with their images in ``images``."""
        table = read_table(csv, COLUMNS, hint=HINT)
        melanoma = binary_column(table, "melanoma", csv)
        keratosis = binary_column(table, "seborrheic_keratosis", csv)
        both = np.flatnonzero(melanoma & keratosis)
        if len(both):
            raise DataError(f"'{csv}' marks {table.image_id.iloc[both[0]]} as both melanoma and seborrheic "
                            "keratosis; the categories are exclusive.")
        labels = {"melanoma": melanoma, "seborrheic_keratosis": keratosis,
                  "three_class": melanoma + 2 * keratosis}[self.task]
        ids = table.image_id.tolist()
        return ImageTable(ids, image_paths(images, ids, csv), labels, csv)

    def patient_metadata(self, split: str) -> pd.DataFrame:
        """``age`` and ``sex`` of ``split``'s images from the challenge's
        ``ISIC-2017_<split>_Data/ISIC-2017_<split>_Data_metadata.csv`` (``image_id,age_approximate,sex``; also read
        from ROOT); no columns when the file is absent."""
        name = f"ISIC-2017_{FOLDERS[split]}_Data_metadata.csv"
        places = (self.root / f"ISIC-2017_{FOLDERS[split]}_Data" / name, self.root / name)
        csv = next((found for place in places if (found := locate(place)) is not None), None)  # or its .tab
        if csv is None:
            return super().patient_metadata(split)
        table = read_table(csv, ("image_id", "age_approximate", "sex"), hint=HINT)
        frame = patient_fields(table.image_id.tolist(), str(csv), sex=table.sex, age=table.age_approximate)
        return patient_rows(frame, self.table(split).ids)

    @property
    def modelled_categories(self) -> list[str]:
        """The submission columns this task predicts (the others hold :data:`UNMODELLED_PROBABILITY`)."""
        return [name for name in self.class_names if name in COLUMNS[1:]]

    def submission(self, ids: list[str], probabilities: np.ndarray) -> pd.DataFrame:
        """Official ISIC 2017 submission, always ``image_id,melanoma,seborrheic_keratosis`` (the official scorer
        refuses a missing column). A binary task fills the category it does not model with
        :data:`UNMODELLED_PROBABILITY` (AUC 0.5; negative at the scorer's threshold p > 0.5); ``three_class``
        writes both of its probabilities."""
        frame = pd.DataFrame({"image_id": ids})
        for name in COLUMNS[1:]:
            frame[name] = (probabilities[:, self.class_names.index(name)] if name in self.class_names
                           else UNMODELLED_PROBABILITY)
        return frame


class ISIC2017Dataset(ReaderDataset):
    """ISIC 2017 Part 3, one split, as a plain torch ``Dataset``; keyword arguments go to :class:`ISIC2017Reader` (e.g.
    ``task``).

    Items as :class:`~datamodules.datasets.reader.ReaderDataset` gives them.
    """

    reader_class = ISIC2017Reader
