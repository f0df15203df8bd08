"""A run's per-image predictions as the grid report uses them: ``predictions_<split>.csv`` in a run folder.

The file format is :mod:`dermlab.files.predictions`'s (``image,target,<class name 1>,...,<class name C>,scored``;
rows with ``scored`` 0 are left out of every score). A classifier's test run writes ``predictions_test.csv``; on
a grid with a ``fold`` axis each cell also writes ``predictions_val.csv`` (its held-out fold) with the checkpoint
it selected (:func:`dermlab.grid.runner.write_split_predictions`). Here they are read into :class:`Predictions`,
NumPy arrays with the alignment the report needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dermlab.errors import DataError
from dermlab.files import predictions as predictions_file
from dermlab.metrics import definitions


@dataclass(frozen=True)
class Predictions:
    """The predictions of one run on one split."""

    #: (N,) image ids, each once.
    images: np.ndarray
    #: (N,) int true class indices in 0..C-1.
    target: np.ndarray
    #: (N, C) predicted class probabilities.
    probabilities: np.ndarray
    #: the C class names (the CSV's class columns, in order).
    class_names: tuple[str, ...]
    #: (N,) bool; False rows are left out of every score.
    scored: np.ndarray
    #: the file they were read from (named in errors), or a description.
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
        ``isic-challenge-scoring``), the argmax otherwise, −1 where the top probability is shared
        (:func:`dermlab.metrics.definitions.decided_argmax`: wrong for every class)."""
        if self.probabilities.shape[1] == 2:
            return (self.probabilities[:, 1] > definitions.THRESHOLD).astype(int)
        return definitions.decided_argmax(self.probabilities)

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


def write_predictions(path: str | Path, images, target, probabilities, class_names, scored=None) -> Path:
    """Write a predictions file (:func:`dermlab.files.predictions.write_predictions`, every image scored unless
    ``scored`` says otherwise); returns the path."""
    scored = np.ones(len(images), dtype=bool) if scored is None else np.asarray(scored, dtype=bool)
    return predictions_file.write_predictions(path, list(images), target, probabilities, scored, class_names)


def read_predictions(path: str | Path) -> Predictions:
    """Read and check a predictions file (:func:`dermlab.files.predictions.read_predictions`).

    Raises:
        DataError: the file is missing, its header is not ``image,target,<classes>,scored``, an image repeats, a
            target or ``scored`` is out of range, or a probability is not in [0, 1] (the file and row named).
    """
    frame = predictions_file.read_predictions(path)
    classes = tuple(str(c) for c in frame.columns[2:-1])
    return Predictions(frame.image.to_numpy(str), frame.target.to_numpy(int), frame[list(classes)].to_numpy(float),
                       classes, frame.scored.to_numpy() == 1, str(path))
