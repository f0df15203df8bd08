"""ISIC 2016 (ISBI 2016) Part 3, benign vs malignant, with the Part 1 lesion masks if wanted.

Download from https://challenge.isic-archive.com/data/#2016 and keep the folder as is::

    ROOT/ISBI2016_ISIC_Part3_Training_Data/ISIC_0000000.jpg ...          900 images
    ROOT/ISBI2016_ISIC_Part3_Test_Data/...                               379
    ROOT/ISBI2016_ISIC_Part3_Training_GroundTruth.csv    no header: ISIC_0000000,benign|malignant
    ROOT/ISBI2016_ISIC_Part3_Test_GroundTruth.csv        no header: ISIC_0000003,0.0|1.0
    ROOT/ISBI2016_ISIC_Part1_{Training,Test}_GroundTruth/ISIC_0000000_Segmentation.png   (with_masks)

There is no official validation set: ``val_size`` random training images form one (``dds``: 251,
leaving 649 for training), drawn with ``seed``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from typing_extensions import override

from datamodules import splits
from datamodules.datasets.reader import ReaderDataset, SplitReader
from datamodules.datasets.table import ImageTable
from dermlab.errors import DataError
from dermlab.files.io import binary_column, image_paths, read_table, require_dir

HINT = ("Download ISIC 2016 Part 3 from https://challenge.isic-archive.com/data/#2016 or write a synthetic copy "
        "with `dermlab synth --dataset isic2016 --out DIR`.")


class ISIC2016Reader(SplitReader):
    """ISIC 2016 Part 3, benign (0) vs malignant (1): the official training images less a random validation
    hold-out, and the official test images (see the module).

    Args:
        root: the folder as downloaded.
        val_size: training images drawn (with ``seed``) into the validation split (``dds``: 251).
        with_masks: add each image's Part 1 lesion mask (``ISIC_..._Segmentation.png``) to the tables.
        **kwargs: the further arguments of :class:`~datamodules.datasets.reader.SplitReader` (``seed``,
            ``on_bad_image``, ...) or, in a data module, of :class:`~datamodules.base.SkinDataModule`.
    """

    class_names = ("benign", "malignant")

    def __init__(self, root: str, val_size: int = 251, with_masks: bool = False, **kwargs: Any) -> None:
        super().__init__(root, **kwargs)
        self.val_size, self.with_masks = val_size, with_masks

    def read_official(self, folder: str) -> ImageTable:
        """The official ``Training`` or ``Test`` images (``folder``) with their labels (and Part 1 masks).

        Raises:
            DataError: a missing folder or file, or a label other than benign / malignant / 0.0 / 1.0.
        """
        require_dir(self.root, "data root", HINT)
        csv = self.root / f"ISBI2016_ISIC_Part3_{folder}_GroundTruth.csv"
        table = read_table(csv, ("image", "label"), header=False, hint=HINT)
        table["label"] = table.label.replace({"benign": "0.0", "malignant": "1.0"})
        try:
            labels = binary_column(table, "label", csv)
        except DataError as error:
            raise DataError(f"{error} (ISIC 2016 training truth uses benign/malignant, test truth 0.0/1.0)") from None
        ids = table.image.tolist()
        result = ImageTable(ids, image_paths(self.root / f"ISBI2016_ISIC_Part3_{folder}_Data", ids, csv), labels, csv)
        if self.with_masks:
            masks = self.root / f"ISBI2016_ISIC_Part1_{folder}_GroundTruth"
            require_dir(masks, "Part 1 mask folder",
                        f"Download the Part 1 ground truth or set with_masks: false. {HINT}")
            result.masks = [[masks / f"{i}_Segmentation.png"] for i in ids]
        return result

    @override
    def read_split(self, split: str) -> ImageTable:
        """``pool`` is the official training set, ``train`` and ``val`` its random split, ``test`` the official
        test set."""
        if split in ("test", "pool"):
            return self.read_official("Test" if split == "test" else "Training")
        pool = self.raw_table("pool")
        return pool.subset(splits.random_holdout(len(pool), self.val_size, self.seed)[split])

    def submission(self, ids: list[str], probabilities: np.ndarray) -> pd.DataFrame:
        """ISIC 2016 submission with the header ``image,malignant`` (the scorer also reads it headerless)."""
        return pd.DataFrame({"image": ids, "malignant": probabilities[:, 1]})


class ISIC2016Dataset(ReaderDataset):
    """ISIC 2016 Part 3 (benign vs malignant), one split, as a plain torch ``Dataset``; keyword arguments go to
    :class:`ISIC2016Reader`.

    Items as :class:`~datamodules.datasets.reader.ReaderDataset` gives them.
    """

    reader_class = ISIC2016Reader
