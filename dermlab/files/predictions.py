"""The per-image predictions file a classifier's test run writes: ``<run folder>/predictions_test.csv``.

Format (one header row, then one row per test image, each image once, in the order the test loader gave them):

``image,target,<class name 1>,...,<class name C>,scored``

* ``image``: the data set's image id (e.g. ``ISIC_0012345``);
* ``target``: the true class as an integer 0..C−1 (the index into the class-name columns);
* one column per class, named by the module's ``class_names``: the probability of that class exactly as the test
  metrics saw it (after view averaging, test-time augmentation and temperature scaling), printed with 9
  significant digits, so the float32 value round-trips;
* ``scored``: 1, or 0 for an image the official scorer gives weight 0 (ISIC 2018 task 3's ISIC_0035068):
  the in-run metrics leave those out, so recompute metrics on the rows with ``scored == 1``.

:func:`read_predictions` reads it back as a table (subgroup tables), :meth:`Predictions.read` as NumPy arrays
(paired tests, fold ensembles, the grid report). A classifier's test run writes ``predictions_test.csv``; on a grid
with a ``fold`` axis each cell also writes ``predictions_val.csv`` (its held-out fold) with the checkpoint it
selected (:func:`dermlab.grid.cell.write_split_predictions`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from dermlab.errors import DataError
from dermlab.files.tables import read_csv
from dermlab.metrics import definitions

FILENAME = "predictions_test.csv"
RESERVED = ("image", "target", "scored")


def predictions_frame(image_ids: Sequence[str], targets: ArrayLike, probabilities: ArrayLike, scored: ArrayLike,
                      class_names: Sequence[str]) -> pd.DataFrame:
    """The predictions table: N ids, (N,) integer targets, (N, C) probabilities, (N,) 0/1 ``scored``.

    Raises:
        ValueError: a class named ``image``, ``target`` or ``scored``, repeated class names, repeated image ids,
            or lengths / widths that do not match.
    """
    names = [str(name) for name in class_names]
    if set(names) & set(RESERVED) or len(set(names)) != len(names):
        raise ValueError(f"class names {names} repeat or clash with the columns {RESERVED}")
    probabilities = np.asarray(probabilities, dtype=np.float32)
    targets, scored = np.asarray(targets, dtype=np.int64), np.asarray(scored, dtype=bool)
    n = len(image_ids)
    if probabilities.shape != (n, len(names)) or targets.shape != (n,) or scored.shape != (n,):
        raise ValueError(f"{n} images, probabilities {probabilities.shape}, targets {targets.shape}, scored "
                         f"{scored.shape}: expected ({n}, {len(names)}), ({n},), ({n},)")
    if len(set(image_ids)) != n:
        raise ValueError("repeated image ids in the predictions")
    frame = pd.DataFrame({"image": [str(i) for i in image_ids], "target": targets})
    for column, name in enumerate(names):
        frame[name] = probabilities[:, column]
    frame["scored"] = scored.astype(np.int64)
    return frame


def write_predictions(path: str | Path, image_ids: Sequence[str], targets: ArrayLike, probabilities: ArrayLike,
                      class_names: Sequence[str], scored: ArrayLike | None = None) -> Path:
    """Write the predictions file (format in the module docstring) to ``path``; see :func:`predictions_frame`.
    ``scored`` None: every image scored. Returns the path."""
    scored = np.ones(len(image_ids), dtype=bool) if scored is None else scored
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    predictions_frame(image_ids, targets, probabilities, scored, class_names).to_csv(path, index=False,
                                                                                     float_format="%.9g")
    return path


def read_predictions(path: str | Path, class_names: Sequence[str] | None = None) -> pd.DataFrame:
    """Read a predictions file back (``image`` as str, ``target`` and ``scored`` as int, probabilities as float).

    Args:
        path: a ``predictions_test.csv``.
        class_names: the class columns expected, in order; None accepts whatever stands between ``target`` and
            ``scored``.

    The file may have been re-saved by a spreadsheet (:func:`dermlab.files.tables.read_csv`: byte-order mark, CRLF,
    spaces around names and ids removed; a European-locale export is refused naming the row).

    Raises:
        DataError: missing file, wrong header, other class columns than expected, repeated images, targets
            outside 0..C−1, ``scored`` not 0/1, or probabilities missing or outside [0, 1] (the row is named).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no predictions file '{path}': a classifier's `dermlab test` writes it into its run folder")
    frame = read_csv(path, "predictions file", dtype={"image": str})  # a re-saved copy: BOM, CRLF, spaces
    columns = list(frame.columns)
    if columns[:2] != ["image", "target"] or columns[-1] != "scored" or len(columns) < 5:
        raise DataError(f"'{path}': header {columns} is not image,target,<classes...>,scored")
    names = columns[2:-1]
    if class_names is not None and names != [str(n) for n in class_names]:
        raise DataError(f"'{path}': class columns {names}, expected {list(class_names)} (another task's run?)")
    if frame.image.duplicated().any():
        raise DataError(f"'{path}': image {frame.image[frame.image.duplicated()].iloc[0]} appears more than once")
    for column, allowed in (("target", range(len(names))), ("scored", (0, 1))):
        bad = ~frame[column].isin(list(allowed))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(f"'{path}' row {row + 2} (image {frame.image.iloc[row]}): {column} "
                            f"{frame[column].iloc[row]} is not in {list(allowed)}")
    values = frame[names].to_numpy(dtype=np.float64)
    bad = ~((values >= 0) & (values <= 1)).all(1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(f"'{path}' row {row + 2} (image {frame.image.iloc[row]}): probabilities "
                        f"{values[row].tolist()} are not all in [0, 1]")
    return frame.astype({"target": np.int64, "scored": np.int64})


@dataclass(frozen=True)
class Predictions:
    """The predictions of one run on one split, as NumPy arrays (:meth:`Predictions.read` from a predictions file)."""

    #: (N,) image ids, each once.
    images: np.ndarray
    #: (N,) int true class indices in 0..C-1.
    target: np.ndarray
    #: (N, C) predicted class probabilities.
    probabilities: np.ndarray
    #: the C class names (the file's class columns, in order).
    class_names: tuple[str, ...]
    #: (N,) bool; False rows are left out of every score.
    scored: np.ndarray
    #: the file they were read from (named in errors), or a description.
    source: str = ""

    @classmethod
    def read(cls, path: str | Path) -> Predictions:
        """Read and check a predictions file (:func:`read_predictions`; its errors)."""
        frame = read_predictions(path)
        classes = tuple(str(c) for c in frame.columns[2:-1])
        return cls(frame.image.to_numpy(str), frame.target.to_numpy(int), frame[list(classes)].to_numpy(float),
                   classes, frame.scored.to_numpy() == 1, str(path))

    def write(self, path: str | Path) -> Path:
        """Write these predictions as a predictions file (:func:`write_predictions`); returns the path."""
        return write_predictions(path, list(self.images), self.target, self.probabilities, self.class_names,
                                 self.scored)

    def __len__(self) -> int:
        return len(self.images)

    def kept(self) -> Predictions:
        """Only the scored rows (every row when none has ``scored`` 0)."""
        if self.scored.all():
            return self
        keep = self.scored
        return Predictions(self.images[keep], self.target[keep], self.probabilities[keep], self.class_names,
                           self.scored[keep], self.source)

    def predicted(self) -> np.ndarray:
        """(N,) predicted classes: P(class 1) > 0.5 for two classes (the suite's threshold, as
        ``isic-challenge-scoring``), the argmax otherwise, −1 where the top probability is shared
        (:func:`dermlab.metrics.definitions.decided_argmax`: wrong for every class)."""
        if self.probabilities.shape[1] == 2:
            return (self.probabilities[:, 1] > definitions.THRESHOLD).astype(int)
        return definitions.decided_argmax(self.probabilities)

    def aligned_to(self, images: Sequence[str] | np.ndarray) -> Predictions:
        """These predictions in the order of ``images`` (the same set of ids).

        Raises:
            DataError: the sets of images differ (the first few differing ids are named).
        """
        images = np.asarray(images)
        if len(images) == len(self.images) and (images == self.images).all():
            return self
        position = {image: i for i, image in enumerate(self.images)}
        missing = [i for i in images if i not in position]
        if missing or len(images) != len(self.images):
            extra = sorted(set(self.images) - set(images))
            raise DataError(f"'{self.source}' does not hold the same images: {len(missing)} missing "
                            f"(e.g. {missing[:3]}), {len(extra)} extra (e.g. {extra[:3]}).")
        order = np.array([position[i] for i in images])
        return Predictions(self.images[order], self.target[order], self.probabilities[order], self.class_names,
                           self.scored[order], self.source)
