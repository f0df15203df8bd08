"""The 7-point criteria evaluation set (Kawahara et al. 2019), mapped onto the HAM classes.

Download ``release_v0`` from https://derm.cs.sfu.ca (the images may not be redistributed)::

    ROOT/release_v0/meta/meta.csv                    case_num,diagnosis,...,clinic,derm,...
    ROOT/release_v0/meta/{train,valid,test}_indexes.csv   one column ``indexes`` (0-based rows)
    ROOT/release_v0/images/<folder>/<file>           the ``derm`` column is the dermoscopic image

(``root`` may also point at ``release_v0`` itself.) As in the ``patch`` paper (Table I: MEL 252,
NV 575, BCC 42, BKL 69, DF 20, VASC 29; no AKIEC), diagnoses map to six HAM classes by
:data:`DIAGNOSIS_TO_CLASS`; ``melanosis`` and ``miscellaneous`` match no HAM class and are left out,
which the log reports. ``merge_valid`` trains on train + valid (616 cases, the paper's setting) and
then has no validation images: nothing may be chosen on the 395 test cases, so such a run keeps its
last epoch and runs a fixed learning-rate schedule (``experiments/patch/spc.yaml``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from typing_extensions import override

from datamodules.datasets.reader import ReaderDataset, SplitReader
from datamodules.datasets.table import ImageTable
from dermlab.errors import DataError
from dermlab.files.io import read_table, require_dir

log = logging.getLogger(__name__)
CLASSES = ("MEL", "NV", "BCC", "BKL", "DF", "VASC")
#: Each Derm7pt diagnosis → its HAM10000 class (the diagnoses in ``UNMATCHED`` have none).
DIAGNOSIS_TO_CLASS = {
    "melanoma": "MEL", "melanoma (in situ)": "MEL", "melanoma (less than 0.76 mm)": "MEL",
    "melanoma (0.76 to 1.5 mm)": "MEL", "melanoma (more than 1.5 mm)": "MEL", "melanoma metastasis": "MEL",
    "clark nevus": "NV", "reed or spitz nevus": "NV", "dermal nevus": "NV", "blue nevus": "NV",
    "congenital nevus": "NV", "combined nevus": "NV", "recurrent nevus": "NV",
    "basal cell carcinoma": "BCC", "seborrheic keratosis": "BKL", "lentigo": "BKL",
    "dermatofibroma": "DF", "vascular lesion": "VASC",
}
UNMATCHED = ("melanosis", "miscellaneous")
HINT = ("Download release_v0 from https://derm.cs.sfu.ca or write a synthetic copy with "
        "`dermlab synth --dataset derm7pt`.")


class Derm7ptReader(SplitReader):
    """The derm7pt release's official train / valid / test cases, dermoscopic images only, on the six HAM classes
    (see the module).

    Args:
        root: ``release_v0`` as downloaded, or the folder holding it.
        merge_valid: train on train + valid (the ``patch`` paper's 616 cases), leaving no validation images.
        **kwargs: the further arguments of :class:`~datamodules.datasets.reader.SplitReader` (``seed``,
            ``on_bad_image``, ...) or, in a data module, of :class:`~datamodules.base.SkinDataModule`.
    """

    class_names = CLASSES

    def __init__(self, root: str, merge_valid: bool = False, **kwargs: Any) -> None:
        super().__init__(root, **kwargs)
        self.merge_valid = merge_valid

    @property
    def release(self) -> Path:
        """The ``release_v0`` folder: ``root`` itself when it holds ``meta/``, else ``root/release_v0``."""
        return self.root if (self.root / "meta").is_dir() else self.root / "release_v0"

    @override
    def read_split(self, split: str) -> ImageTable:
        meta_dir = require_dir(self.release / "meta", "derm7pt meta folder", HINT)
        csv = meta_dir / "meta.csv"
        meta = read_table(csv, ("case_num", "diagnosis", "derm"), hint=HINT)
        unknown = sorted(set(meta.diagnosis) - set(DIAGNOSIS_TO_CLASS) - set(UNMATCHED))
        if unknown:
            raise DataError(f"'{csv}' holds diagnoses {unknown} that map to no class; expected those of release_v0.")
        names = {"train": ["train"] + (["valid"] if self.merge_valid else []),
                 "val": [] if self.merge_valid else ["valid"], "test": ["test"]}[split]
        rows = []
        for name in names:
            index_csv = meta_dir / f"{name}_indexes.csv"
            indexes = read_table(index_csv, ("indexes",), hint=HINT).indexes.astype(int)
            if ((indexes < 0) | (indexes >= len(meta))).any():
                raise DataError(f"'{index_csv}' holds row numbers outside 0..{len(meta) - 1}.")
            rows += indexes.tolist()
        chosen = meta.iloc[rows]
        kept = chosen[chosen.diagnosis.isin(list(DIAGNOSIS_TO_CLASS))]
        if len(kept) < len(chosen):
            log.info("derm7pt %s: left out %d case(s) whose diagnosis matches no HAM class (%s)", split,
                     len(chosen) - len(kept), ", ".join(sorted(set(chosen.diagnosis) - set(kept.diagnosis))))
        labels = np.array([CLASSES.index(DIAGNOSIS_TO_CLASS[d]) for d in kept.diagnosis], dtype=np.int64)
        paths = [self.release / "images" / p for p in kept.derm]
        ids = [f"case_{c}" for c in kept.case_num]
        return ImageTable(ids, paths, labels, csv, extra={"diagnosis": kept.diagnosis.tolist()})


class Derm7ptDataset(ReaderDataset):
    """Derm7pt, one split, as a plain torch ``Dataset``; keyword arguments go to :class:`Derm7ptReader`.

    Items as :class:`~datamodules.datasets.reader.ReaderDataset` gives them.
    """

    reader_class = Derm7ptReader
