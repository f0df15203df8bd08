"""The images of one split and what is known about each (:class:`~datamodules.datasets.table.ImageTable`), and the
file checks every reader shares. Plain Python: no Lightning, no torch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from stat import S_ISREG

import numpy as np
import pandas as pd


@dataclass
class ImageTable:
    """The images of one split and what is known about each.

    ``labels`` are class indices (-1 where unknown); ``masks`` holds, per image, the mask files
    of a segmentation task; ``groups`` the lesion (or patient) ids, ``""`` where unknown; ``weights``
    per-sample loss weights.
    """

    ids: list[str]
    paths: list[Path]
    labels: np.ndarray
    source: Path  # the CSV (or folder) the table came from, named in error messages
    masks: list[list[Path]] | None = None
    groups: list[str] | None = None
    weights: np.ndarray | None = None
    extra: dict[str, list] = field(default_factory=dict)  # e.g. dx_type, for split CSVs and weighting
    screened: bool = False  # on_bad_image already applied (subsets of a screened table stay screened)

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, index: Sequence[int] | np.ndarray) -> ImageTable:
        """A new table of the rows at positions ``index`` (in that order), every per-image column picked alike;
        ``source`` and ``screened`` carry over."""
        index = np.asarray(index, dtype=int)
        pick = lambda values: None if values is None else [values[i] for i in index]  # noqa: E731
        return replace(self, ids=pick(self.ids), paths=pick(self.paths), labels=self.labels[index],
                       masks=pick(self.masks), groups=pick(self.groups),
                       weights=None if self.weights is None else self.weights[index],
                       extra={k: pick(v) for k, v in self.extra.items()})

    def concat(self, other: ImageTable) -> ImageTable:
        """This table followed by ``other``; masks, groups, weights and extra columns only where both have them."""
        both = lambda a, b: None if a is None or b is None else [*a, *b]  # noqa: E731
        # lesion ids where either side has them ("" = unknown lesion), so the split audit still sees them
        groups = None if self.groups is None and other.groups is None else [
            *(self.groups or [""] * len(self)), *(other.groups or [""] * len(other))]
        return replace(self, ids=[*self.ids, *other.ids], paths=[*self.paths, *other.paths],
                       labels=np.concatenate([self.labels, other.labels]), masks=both(self.masks, other.masks),
                       groups=groups,
                       weights=None if self.weights is None or other.weights is None
                       else np.concatenate([self.weights, other.weights]),
                       extra={k: [*v, *other.extra[k]] for k, v in self.extra.items() if k in other.extra},
                       screened=self.screened and other.screened)

    def frame(self, class_names: Sequence[str]) -> pd.DataFrame:
        """One row per image: id, label name (``class_names[label]``, ``""`` where unknown), and the grouping
        (``lesion_id``) and extra columns; what ``splits/<split>.csv`` holds."""
        frame = pd.DataFrame({"image_id": self.ids,
                              "label": [class_names[i] if i >= 0 else "" for i in self.labels]})
        if self.groups is not None:
            frame["lesion_id"] = self.groups
        for name, values in self.extra.items():
            frame[name] = values
        return frame


_PLAIN_IS_FILE = type(Path()).is_file


def file_size(path: Path) -> int | None:
    """The size of image ``path`` in bytes; None when it is absent. An image inside a container
    (:class:`dermlab.files.hdf5.HDF5Image`) answers ``is_file`` for its own entry and has no size here (-1)."""
    if type(path).is_file is not _PLAIN_IS_FILE:  # a container's entry answers for itself
        return -1 if path.is_file() else None
    try:
        result = path.stat()  # one system call: existence, kind and size
    except OSError:
        return None
    return result.st_size if S_ISREG(result.st_mode) else None


def shortlist(names: list[str], shown: int = 10) -> str:
    """``a, b, c`` for up to ``shown`` names, then ``… and N more``: a log line stays readable for 10,000 ids."""
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" … and {more:,} more" if more > 0 else "")
