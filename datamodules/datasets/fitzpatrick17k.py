"""Fitzpatrick17k (Groh et al., CVPR Workshops 2021, arXiv:2104.09957, doi:10.48550/arXiv.2104.09957): 16,577
clinical photographs of 114 skin conditions from two dermatology atlases, each rated on the Fitzpatrick scale.

The annotations come from https://github.com/mattgroh/fitzpatrick17k (CC BY-NC-SA 3.0); the images are not shipped:
each row's ``url`` is downloaded by you and saved as ``<md5hash>.jpg``. The layout read::

    ROOT/fitzpatrick17k.csv        md5hash,fitzpatrick_scale,fitzpatrick_centaur,label,nine_partition_label,
                                   three_partition_label,qc,url,url_alphanum
    ROOT/images/<md5hash>.jpg      (or the images beside the CSV)

``fitzpatrick_scale`` is the type 1–6 (``-1``: not rated), read into the subgroup attributes ``fitzpatrick``
(I–VI) and ``fitzpatrick_group`` (I-II, III-IV, V-VI); ``fitzpatrick_centaur`` (a second rating, same coding),
``label`` (the condition, kept as ``condition``), ``nine_partition_label`` and ``qc`` (a quality-control note on a
subset: ``1 Diagnostic``, ``3 Wrongly labelled``, ...) are kept as extra columns. Classes: ``three_partition_label``
(benign, malignant, non-neoplastic; the class set ``fitzpatrick17k``). A HAM10000 model is scored on benign vs
malignant, its non-neoplastic images left out and counted (:data:`datamodules.taxonomies.FROM_HUB`).

There are no patient or lesion ids: ``split: kfold`` (default) is stratified by class, image by image;
``external`` makes every image a test image. **Absent images** (dead links are common): ``on_bad_image: error``
(default) stops with how many are absent and a few names; ``skip`` goes on with those present, in one warning.
The folds are drawn on every row of the CSV, so images fetched later keep their side.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import numpy as np
from typing_extensions import override

from datamodules.datasets.external import ExternalSetReader, checked, locate_images
from datamodules.datasets.pooled import PooledDataset
from datamodules.datasets.table import ImageTable
from datamodules.taxonomies import TAXONOMIES
from dermlab.files.io import read_table, require_dir
from dermlab.files.skin_type import GROUP, TYPE, fitzpatrick_type

log = logging.getLogger(__name__)

CLASSES = TAXONOMIES["fitzpatrick17k"]  # benign, malignant, non-neoplastic
CSV = "fitzpatrick17k.csv"
COLUMNS = ("md5hash", "fitzpatrick_scale", "three_partition_label")  # md5hash first: the id column
#: CSV column → the extra column of the table (``splits/<split>.csv``) it is kept as, where the CSV has it; the
#: condition is renamed, as ``label`` is the split CSV's class column.
EXTRA = {"fitzpatrick_centaur": "fitzpatrick_centaur", "label": "condition",
         "nine_partition_label": "nine_partition_label", "qc": "qc", "url": "url"}
TYPE_EXPECTED = "1-6 or -1 (not rated)"
HINT = ("Download fitzpatrick17k.csv from https://github.com/mattgroh/fitzpatrick17k and each row's url as "
        "images/<md5hash>.jpg, or write a synthetic copy with `dermlab synth --dataset fitzpatrick17k --out DIR`.")


def partition_label(value: Any) -> int:
    """A ``three_partition_label`` (any case) → its class index.

    Raises:
        ValueError: a value that is none of the classes.
    """
    return CLASSES.index(str(value).strip().lower())


class Fitzpatrick17kReader(ExternalSetReader):
    """Fitzpatrick17k, three classes (see the module).

    Args:
        root: the folder holding ``fitzpatrick17k.csv`` (the images in ``images/`` or beside it).
        **kwargs: the further arguments of :class:`~datamodules.datasets.pooled.PooledReader` (``split``:
            ``kfold`` (default) or ``external``, ``fold``, ``n_folds``, ``seed``, ``on_bad_image``, ...) or, in a
            data module, of :class:`~datamodules.base.SkinDataModule`.
    """

    class_names = CLASSES
    taxonomy_name: ClassVar[str] = "fitzpatrick17k"
    skin_columns: ClassVar[dict[str, str]] = {TYPE: "fitzpatrick_scale", GROUP: "fitzpatrick_scale"}
    absent_note = ("Fitzpatrick17k ships no images: each is fetched from its row's url, and some links are dead, so "
                   "an incomplete set is usual; on_bad_image: skip tests and trains on the images present.")

    @override
    def read_pool(self) -> ImageTable:
        """Every row of ``fitzpatrick17k.csv``: ids are the ``md5hash``; ``extra`` holds ``fitzpatrick_scale`` (as
        released) and the columns of :data:`EXTRA` the CSV has (``label`` as ``condition``; empty where the CSV is).

        Raises:
            DataError: a missing file or column, no images at all, a ``three_partition_label`` other than the three
                classes or a Fitzpatrick rating other than 1–6 or -1, naming the file, the row and the value.
        """
        require_dir(self.root, "data root", HINT)
        table = read_table(self.root / CSV, COLUMNS, hint=HINT)
        csv = table.attrs["path"]
        labels = np.array(checked(csv, table, "md5hash", "three_partition_label", partition_label,
                                  " or ".join(CLASSES)), np.int64)
        for column in ("fitzpatrick_scale", "fitzpatrick_centaur"):
            if column in table.columns:
                checked(csv, table, "md5hash", column, fitzpatrick_type, TYPE_EXPECTED)
        ids = table.md5hash.tolist()
        extra = {"fitzpatrick_scale": table.fitzpatrick_scale.fillna("").tolist(),
                 **{name: table[c].fillna("").tolist() for c, name in EXTRA.items() if c in table.columns}}
        log.info("Fitzpatrick17k: %d images in '%s' (%s)", len(ids), csv,
                 ", ".join(f"{name} {int((labels == k).sum())}" for k, name in enumerate(CLASSES)))
        return ImageTable(ids, locate_images(self.root, [f"{i}.jpg" for i in ids], csv, HINT), labels, csv,
                          extra=extra)


class Fitzpatrick17kDataset(PooledDataset):
    """Fitzpatrick17k, one split, as a plain torch ``Dataset``; keyword arguments go to
    :class:`Fitzpatrick17kReader`; ``scheme`` is the reader's ``split`` (``kfold`` or ``external``), ``fold`` its
    fold.

    Items as :class:`~datamodules.datasets.reader.ReaderDataset` gives them.
    """

    reader_class = Fitzpatrick17kReader
