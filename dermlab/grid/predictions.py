"""A run's per-image predictions: ``predictions_<split>.csv`` in its run folder, read and written.

The format (one row per image, a header line)::

    image,target,<class name 1>,...,<class name C>[,scored]

``image`` is the image id, ``target`` the true class as an integer index into the class columns, the class
columns the predicted probabilities, and ``scored`` (optional) 0/1: rows with 0 are left out of every score (the
official scorers' weight-0 images, e.g. ISIC_0035068 of the ISIC 2018 task 3 test set). A grid cell writes
``predictions_test.csv`` (its test split) and, on a grid with a ``fold`` axis, ``predictions_val.csv`` (its
held-out fold) with the checkpoint it selected; the report reads them back here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dermlab.errors import DataError

FIXED = ("image", "target")


@dataclass(frozen=True)
class Predictions:
    """The predictions of one run on one split.

    Attributes:
        images: (N,) image ids, each once.
        target: (N,) int true class indices in 0..C-1.
        probabilities: (N, C) predicted class probabilities.
        class_names: the C class names (the CSV's class columns, in order).
        scored: (N,) bool; False rows are left out of every score.
        source: the file they were read from (named in errors), or a description.
    """

    images: np.ndarray
    target: np.ndarray
    probabilities: np.ndarray
    class_names: tuple[str, ...]
    scored: np.ndarray
    source: str = ""

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
        ``isic-challenge-scoring``), the argmax otherwise."""
        if self.probabilities.shape[1] == 2:
            return (self.probabilities[:, 1] > 0.5).astype(int)
        return self.probabilities.argmax(1)

    def aligned_to(self, images) -> Predictions:
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


def predictions_frame(images, target, probabilities, class_names, scored=None) -> pd.DataFrame:
    """The CSV's table: ``image, target, <class names>[, scored]`` (``scored`` only when given)."""
    probabilities = np.asarray(probabilities, dtype=float)
    frame = pd.DataFrame({"image": list(images), "target": np.asarray(target, dtype=int)})
    for index, name in enumerate(class_names):
        frame[str(name)] = probabilities[:, index]
    if scored is not None:
        frame["scored"] = np.asarray(scored, dtype=bool).astype(int)
    return frame


def write_predictions(path: str | Path, images, target, probabilities, class_names, scored=None) -> Path:
    """Write ``predictions_<split>.csv`` (probabilities with 6 decimals); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    predictions_frame(images, target, probabilities, class_names, scored).to_csv(path, index=False,
                                                                                 float_format="%.6f")
    return path


def read_predictions(path: str | Path) -> Predictions:
    """Read and check a predictions CSV.

    Raises:
        DataError: the file is missing or empty; ``image`` or ``target`` is missing; no class column; an image
            repeats; a target is not an integer class index; a probability is not a number in [0, 1]; ``scored``
            is not 0/1 (each naming the file, and the row and column where one is at fault).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"predictions file '{path}' does not exist; re-run the cell's test (`dermlab grid run`).")
    frame = pd.read_csv(path, dtype={"image": str})
    missing = [c for c in FIXED if c not in frame.columns]
    if missing:
        raise DataError(f"'{path}' lacks column(s) {missing}; expected image,target,<class names>[,scored].")
    classes = [c for c in frame.columns if c not in (*FIXED, "scored")]
    if len(classes) < 2 or frame.empty:
        raise DataError(f"'{path}' needs at least 2 class columns and one row; it has columns {list(frame.columns)} "
                        f"and {len(frame)} row(s).")
    repeated = frame.image[frame.image.duplicated()].tolist()
    if repeated:
        raise DataError(f"'{path}' lists image(s) {repeated[:5]} more than once (row "
                        f"{int(frame.index[frame.image.duplicated()][0]) + 2}); each image must appear once.")
    target = pd.to_numeric(frame.target, errors="coerce")
    bad = ~(target.notna() & (target == target.round()) & target.between(0, len(classes) - 1))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(f"'{path}' row {row + 2} column 'target' holds '{frame.target.iloc[row]}'; it must be a "
                        f"class index 0..{len(classes) - 1} ({', '.join(classes)}).")
    probabilities = frame[classes].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    bad_cells = ~((probabilities >= 0) & (probabilities <= 1))  # NaN fails both comparisons
    if bad_cells.any():
        row, column = (int(i[0]) for i in np.nonzero(bad_cells))
        raise DataError(f"'{path}' row {row + 2} column {classes[column]!r} holds "
                        f"'{frame[classes[column]].iloc[row]}'; probabilities must be numbers in [0, 1].")
    scored = np.ones(len(frame), dtype=bool)
    if "scored" in frame.columns:
        flags = pd.to_numeric(frame.scored, errors="coerce")
        if not flags.isin([0, 1]).all():
            row = int(np.flatnonzero(~flags.isin([0, 1]))[0])
            raise DataError(f"'{path}' row {row + 2} column 'scored' holds '{frame.scored.iloc[row]}'; use 0 or 1.")
        scored = flags.to_numpy() == 1
    return Predictions(frame.image.to_numpy(str), target.to_numpy(int), probabilities, tuple(classes), scored,
                       str(path))
