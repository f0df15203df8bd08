"""HAM10000 (Tschandl et al. 2018): 10,015 dermoscopy images of seven classes, 600×450 px.

Download from Harvard Dataverse (doi:10.7910/DVN/DBW86T) or Kaggle and keep the folder as is::

    ROOT/HAM10000_metadata.csv      lesion_id,image_id,dx,dx_type,age,sex,localization[,dataset]
                                    (or HAM10000_metadata.tab, the tab-separated form Dataverse serves)
    ROOT/HAM10000_images_part_1/ISIC_0024306.jpg ...
    ROOT/HAM10000_images_part_2/...
    (or all images in one flat folder: ROOT/images/ or ROOT itself)

Both the 7-column Kaggle and the 8-column Dataverse metadata are read. Classes follow the
ISIC 2018 order MEL, NV, BCC, AKIEC, BKL, DF, VASC. There is no official split: ``split`` picks the
paper's scheme (see :mod:`datamodules.datasets.pooled`), always grouped by ``lesion_id`` where the paper asks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from typing_extensions import override

from datamodules.datasets.pooled import DX_TYPES, HAM_CLASSES, PooledDataset, PooledReader
from datamodules.datasets.table import ImageTable
from dermlab.errors import DataError
from dermlab.files.io import read_table, require_dir
from dermlab.files.listing import images_by_stem
from dermlab.files.metadata import patient_fields, patient_rows

COLUMNS = ("image_id", "lesion_id", "dx", "dx_type")
ATTRIBUTES = ("age", "sex", "localization")  # metadata columns the subgroup metrics use (age as age_band)
MASK_FOLDER = "HAM10000_segmentations_lesion_tschandl"  # the lesion masks of Tschandl et al. 2020, where present
IMAGE_FOLDERS = ("HAM10000_images_part_1", "HAM10000_images_part_2", "HAM10000_images", "images", ".")
HINT = "Download HAM10000 from Harvard Dataverse (doi:10.7910/DVN/DBW86T) or `dermlab synth --dataset ham10000`."


class HAM10000Reader(PooledReader):
    """HAM10000 with the ``dds`` / ``patch`` / ``weighting`` / K-fold splits."""

    def locate_images(self, ids: list[str]) -> list[Path]:
        """Each image in whichever of the known folders holds it (parts 1/2 or a flat folder)."""
        where: dict[str, Path] = {}
        for name in IMAGE_FOLDERS:
            folder = self.root / name
            if folder.is_dir():
                for stem, path in images_by_stem(folder, keep=lambda p: p.name.startswith("ISIC_")).items():
                    where.setdefault(stem, path)
        if not where:
            raise DataError(f"no ISIC_* images under '{self.root}' (looked in {', '.join(IMAGE_FOLDERS)}). {HINT}")
        return [where.get(i, self.root / IMAGE_FOLDERS[0] / f"{i}.jpg") for i in ids]

    @override
    def read_pool(self) -> ImageTable:
        require_dir(self.root, "data root", HINT)
        table = read_table(self.root / "HAM10000_metadata.csv", COLUMNS, hint=HINT)
        csv = table.attrs["path"]  # the .csv, or the .tab that Dataverse serves
        codes = [c.lower() for c in HAM_CLASSES]
        unknown = sorted(set(table.dx) - set(codes))
        if unknown:
            raise DataError(f"'{csv}' column 'dx' holds {unknown}; expected one of {codes}.")
        bad_types = sorted(set(table.dx_type) - set(DX_TYPES))
        if bad_types:
            raise DataError(f"'{csv}' column 'dx_type' holds {bad_types}; expected one of {list(DX_TYPES)}.")
        ids = table.image_id.tolist()
        labels = np.array([codes.index(d) for d in table.dx], dtype=np.int64)
        return ImageTable(ids, self.locate_images(ids), labels, csv, groups=table.lesion_id.tolist(),
                          extra={"dx_type": table.dx_type.tolist()})

    def patient_metadata(self, split: str) -> pd.DataFrame:
        """``age``, ``sex`` and ``localization`` of ``split``'s images from ``HAM10000_metadata.csv``
        (NaN or ``unknown`` where the file says so or is empty)."""
        table = read_table(self.root / "HAM10000_metadata.csv", ("image_id",), hint=HINT)
        csv = table.attrs["path"]
        frame = patient_fields(table.image_id.tolist(), str(csv),
                           **{name: table[name] for name in ATTRIBUTES if name in table.columns})
        return patient_rows(frame, self.table(split).ids)

    def lesion_masks(self, split: str) -> dict[str, Path]:
        """``ROOT/HAM10000_segmentations_lesion_tschandl/<id>_segmentation.png`` (Tschandl et al. 2020), where
        present."""
        folder = self.root / MASK_FOLDER
        if not folder.is_dir():
            return {}
        return {i: folder / f"{i}_segmentation.png" for i in self.table(split).ids
                if (folder / f"{i}_segmentation.png").is_file()}


class HAM10000Dataset(PooledDataset):
    """HAM10000, one split, as a plain torch ``Dataset``; keyword arguments go to :class:`HAM10000Reader`; ``scheme``
    is the reader's ``split`` (the split scheme), ``fold`` its fold.

    Items as :class:`~datamodules.datasets.reader.ReaderDataset` gives them.
    """

    reader_class = HAM10000Reader
