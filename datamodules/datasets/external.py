"""What the external test sets with Fitzpatrick skin-type labels share (DDI, Fitzpatrick17k): image-level split
schemes, images beside their CSV or in ``images/``, and the skin-type subgroup attributes.

These sets have no lesion or patient ids, so their pool is split image by image: ``split: external`` (every image a
test image, for a model trained elsewhere: ``test_on``, :mod:`datamodules.cross`) or ``kfold`` (stratified by class;
test = fold ``fold``, validation = the next fold, training = the rest). The lesion-grouped schemes of
:mod:`datamodules.datasets.pooled` (``patch``, ``weighting``, ``holdout``, ``official``) are refused.

Each reader keeps the released Fitzpatrick value of every image as an ``extra`` column of its
:class:`~datamodules.datasets.table.ImageTable` (so it lands in ``splits/<split>.csv``);
:meth:`ExternalSetReader.metadata` turns it
into the subgroup attributes of :mod:`dermlab.files.skin_type` (``fitzpatrick``: I–VI; ``fitzpatrick_group``:
I-II, III-IV, V-VI), which the subgroup metrics (:class:`callbacks.subgroups.SubgroupMetrics`) report per group.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from typing_extensions import override

from datamodules.datasets.pooled import PooledReader
from datamodules.datasets.table import ImageTable
from dermlab.errors import DataError
from dermlab.files.listing import IMAGE_SUFFIXES, images_by_stem
from dermlab.files.skin_type import GROUP, TYPE, fitzpatrick_group, fitzpatrick_type

IMAGES = "images"  #: the images' sub-folder (the images may also lie beside the CSV)
SCHEMES = ("external", "kfold")  #: the split schemes of a set without lesion ids

#: How each skin-type subgroup attribute is read from a released value.
READ_AS = {TYPE: fitzpatrick_type, GROUP: fitzpatrick_group}


class ExternalSetReader(PooledReader):
    """A pool of labelled images without lesion ids, split image by image (``split``: ``external`` or ``kfold``,
    ``fold``, ``n_folds``: see the module), with Fitzpatrick skin types as subgroup attributes.

    A subclass reads its pool (:meth:`~datamodules.datasets.pooled.PooledReader.read_pool`), keeping the released
    skin-type value of each image in the ``extra`` column :attr:`skin_columns` names.
    """

    #: subgroup attribute (:data:`~dermlab.files.skin_type.TYPE`, :data:`~dermlab.files.skin_type.GROUP`) → the
    #: ``extra`` column of the table holding the released value it is read from.
    skin_columns: ClassVar[dict[str, str]] = {}

    @override
    def split_indices(self, pool: ImageTable) -> dict[str, np.ndarray]:
        """As :meth:`~datamodules.datasets.pooled.PooledReader.split_indices` for ``external`` and ``kfold``
        (stratified, image by image).

        Raises:
            DataError: any other scheme, naming the two offered.
        """
        if self.scheme not in SCHEMES:
            raise DataError(f"split {self.scheme!r} is not available for {type(self).__name__}: it has no lesion or "
                            f"patient ids to group by; use split: external (every image tests) or kfold (stratified "
                            "by class, image by image).")
        return super().split_indices(pool)

    @override
    def metadata(self, split: str) -> pd.DataFrame:
        """The subgroup attributes of ``split`` (:meth:`~datamodules.datasets.reader.SplitReader.metadata`) plus
        the skin-type columns (``fitzpatrick``: ``I`` … ``VI``, ``fitzpatrick_group``: ``I-II``, ``III-IV``,
        ``V-VI``; ``unknown`` where the data set does not rate the image), indexed by the split's image ids in
        order."""
        frame = super().metadata(split)
        table = self.table(split)
        for attribute, column in self.skin_columns.items():
            frame[attribute] = [READ_AS[attribute](value) for value in table.extra[column]]
        return frame


def locate_images(folder: Path, files: Sequence[str], csv: Path, hint: str) -> list[Path]:
    """Each of ``files`` (names as the CSV gives them, with or without a suffix) in ``folder/images/`` or ``folder``
    itself, found by name without suffix, whatever the suffix's case (``000001.PNG``); an absent one gets the path it
    would have in ``folder/images/`` (where that folder exists, else in ``folder``), for ``on_bad_image`` to report.

    Raises:
        DataError: neither folder holds any image, naming both and ``csv``.
    """
    found: dict[str, Path] = images_by_stem(folder / IMAGES)
    if not all(Path(name).stem in found for name in files):  # the CSV's own folder only where images/ lacks some
        for stem, path in images_by_stem(folder).items():
            found.setdefault(stem, path)
    if not found:
        raise DataError(f"no images ({'/'.join(IMAGE_SUFFIXES)}, any case) in '{folder / IMAGES}' or '{folder}'; "
                        f"they should hold the images listed in '{csv}'. {hint}")
    home = folder / IMAGES if (folder / IMAGES).is_dir() else folder
    return [found.get(Path(name).stem, home / name) for name in files]


def checked(csv: Path, table: pd.DataFrame, ids: str, column: str, read: Callable[[Any], Any],
            expected: str) -> list[Any]:
    """``read`` applied to every value of ``column`` of ``table`` (read from ``csv``, image ids in column ``ids``).

    Raises:
        DataError: a value ``read`` refuses (``ValueError`` or ``KeyError``), naming the file, the row (file row:
            index + 2), the image, the value and what is ``expected``.
    """
    values = []
    for row, value in enumerate(table[column].tolist()):
        try:
            values.append(read(value))
        except (ValueError, KeyError):
            shown = "empty" if pd.isna(value) else repr(value)
            raise DataError(f"'{csv}' row {row + 2} ({table[ids].iloc[row]}): {column} is {shown}; expected "
                            f"{expected}.") from None
    return values
