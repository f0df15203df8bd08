"""DDI, the Diverse Dermatology Images (Daneshjou et al., Sci Adv 8:eabq6147, 2022, doi:10.1126/sciadv.abq6147):
656 clinical photographs of biopsied lesions, benign vs malignant, with Fitzpatrick skin types in three groups.

Download it from the Stanford AIMI page
(https://stanfordaimi.azurewebsites.net/datasets/35866158-8196-48d8-87bf-50dca81df965; a Stanford research-use
agreement, the images may not be redistributed). It unpacks as one folder::

    ROOT/ddi_metadata.csv     ,DDI_ID,DDI_file,skin_tone,malignant,disease   (a leading unnamed index column)
    ROOT/000001.png ...       the images beside the CSV (or in ROOT/images/, where the authors' loader expects them)

``root`` may also be the folder above (e.g. ``ROOT/..`` holding ``ddidiversedermatologyimages/``): the one
sub-folder holding ``ddi_metadata.csv`` is read. ``skin_tone`` is ``12``, ``34`` or ``56`` (Fitzpatrick I–II,
III–IV, V–VI: 208, 241 and 207 images); ``malignant`` is ``True`` / ``False`` (485 benign, 171 malignant; older
copies have ``malignancy(malig=1)`` with ``0`` / ``1`` instead); ``disease`` is the diagnosis text
(``melanoma-in-situ``, ``verruca-vulgaris``, ...), kept as an extra column. There are no patient or lesion ids.

Classes: benign, malignant, the class list of ISIC 2016; the reader names its class set ``ddi``
(:attr:`DDIReader.taxonomy_name`), so a HAM10000 model's mapping reads ``isic2018 → ddi`` (MEL, BCC, AKIEC →
malignant). DDI is an evaluation set: ``split: external`` (default) makes every image a test image; ``kfold``
(stratified by class, image by image) trains on it. The subgroup attribute is ``fitzpatrick_group``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from typing_extensions import override

from datamodules.datasets.external import ExternalSetReader, checked, locate_images
from datamodules.datasets.pooled import PooledDataset, Scheme
from datamodules.datasets.table import ImageTable
from dermlab.errors import DataError
from dermlab.files.io import read_table, require_dir
from dermlab.files.skin_type import DDI_CODES, GROUP

log = logging.getLogger(__name__)

CLASSES = ("benign", "malignant")
CSV = "ddi_metadata.csv"
COLUMNS = ("DDI_file", "skin_tone", "disease")  # DDI_file first: the id column (every row has one, none twice)
LABEL_COLUMNS = ("malignant", "malignancy(malig=1)")  # the release's flag, then the older copies' 0 / 1
FLAGS = {"true": 1, "false": 0, "1": 1, "0": 0, "1.0": 1, "0.0": 0}
HINT = ("Download DDI from https://stanfordaimi.azurewebsites.net/datasets/35866158-8196-48d8-87bf-50dca81df965 or "
        "write a synthetic copy with `dermlab synth --dataset ddi --out DIR`.")


def malignant_flag(value: Any) -> int:
    """``True`` / ``False`` (any case) or ``1`` / ``0`` → 1 / 0.

    Raises:
        KeyError: any other value.
    """
    return FLAGS[str(value).strip().lower()]


def skin_tone_code(value: Any) -> str:
    """A ``skin_tone`` value as its code ``12``, ``34`` or ``56`` (``12.0`` from a re-saved copy too).

    Raises:
        KeyError: any other value.
    """
    text = str(value).strip()
    code = text[:-2] if text.endswith(".0") else text
    if code not in DDI_CODES:
        raise KeyError(value)
    return code


class DDIReader(ExternalSetReader):
    """DDI's images, benign vs malignant (see the module).

    Args:
        root: the folder holding ``ddi_metadata.csv`` (the images beside it or in ``images/``), or its parent.
        split: ``external`` (default: every image tests) or ``kfold`` (stratified by class; ``fold``, ``n_folds``).
        **kwargs: the further arguments of :class:`~datamodules.datasets.pooled.PooledReader` (``fold``,
            ``n_folds``, ``seed``, ``on_bad_image``, ...) or, in a data module, of
            :class:`~datamodules.base.SkinDataModule`.
    """

    class_names = CLASSES
    #: The name of DDI's class set in a class mapping (``isic2018 → ddi``), as its class list is ISIC 2016's.
    taxonomy_name: ClassVar[str] = "ddi"
    skin_columns: ClassVar[dict[str, str]] = {GROUP: "skin_tone"}

    def __init__(self, root: str, split: Scheme = "external", **kwargs: Any) -> None:
        super().__init__(root, split=split, **kwargs)

    @property
    def folder(self) -> Path:
        """The folder holding ``ddi_metadata.csv``: ``root`` itself, else the one sub-folder of ``root`` that holds
        it (``root`` as is when none or several do)."""
        if (self.root / CSV).is_file():
            return self.root
        below = sorted(p.parent for p in self.root.glob(f"*/{CSV}"))
        return below[0] if len(below) == 1 else self.root

    @override
    def read_pool(self) -> ImageTable:
        """Every image of ``ddi_metadata.csv``: ids are the file names without suffix (``000001``); ``extra`` holds
        ``skin_tone`` (``12``, ``34``, ``56``) and ``disease``.

        Raises:
            DataError: a missing file or column, no images at all, or a ``skin_tone`` other than 12, 34, 56 or a
                malignancy flag other than True / False (1 / 0), naming the file, the row and the value.
        """
        require_dir(self.root, "data root", HINT)
        folder = self.folder
        table = read_table(folder / CSV, COLUMNS, hint=HINT)
        csv = table.attrs["path"]
        flag = next((c for c in LABEL_COLUMNS if c in table.columns), None)
        if flag is None:
            raise DataError(f"'{csv}' has neither column {' nor '.join(LABEL_COLUMNS)} (the malignancy flag); it has "
                            f"{', '.join(map(str, table.columns))}. Expected header: ,DDI_ID,DDI_file,skin_tone,"
                            "malignant,disease.")
        labels = np.array(checked(csv, table, "DDI_file", flag, malignant_flag, "True or False (or 1 / 0)"), np.int64)
        tones = checked(csv, table, "DDI_file", "skin_tone", skin_tone_code, "12, 34 or 56 (Fitzpatrick I-II, "
                        "III-IV, V-VI)")
        files = table.DDI_file.tolist()
        ids = [Path(name).stem for name in files]
        log.info("DDI: %d images in '%s' (%d malignant; skin tone 12 / 34 / 56: %s)", len(ids), csv,
                 int(labels.sum()), " / ".join(str(tones.count(c)) for c in DDI_CODES))
        return ImageTable(ids, locate_images(folder, files, csv, HINT), labels, csv,
                          extra={"skin_tone": tones, "disease": table.disease.fillna("").tolist()})


class DDIDataset(PooledDataset):
    """DDI, one split, as a plain torch ``Dataset``; keyword arguments go to :class:`DDIReader`; ``scheme`` is the
    reader's ``split`` (``external``: every image in ``test``; ``kfold``), ``fold`` its fold.

    Items as :class:`~datamodules.datasets.reader.ReaderDataset` gives them.
    """

    reader_class = DDIReader
