"""What a test run records beside its predictions: ``<run folder>/predictions_test.json``.

A classifier's test (``dermlab test``, ``dermlab demo``, a grid cell's test step) writes it with
``predictions_test.csv`` (:mod:`dermlab.files.predictions`), so that the file's numbers can be tied to the weights
and the preprocessing that made them — what ``dermlab export`` needs to put the test metrics on a model card:

* ``checkpoint``: ``{"path", "sha256"}`` of the checkpoint tested (both null when a model in memory was tested);
* ``weights``: the fingerprint of the weights tested (:func:`dermlab.files.checkpoints.weights_fingerprint`), what
  ``dermlab export`` matches a checkpoint against (a grid's slimmed checkpoint keeps it, its file hash does not);
* ``preprocessing``: the evaluation pipeline (:meth:`datamodules.base.SkinDataModule.evaluation_preprocessing`);
* ``data``: ``{"name", "class", "root", "test_on"}``: the data set's config name, its data module, its folder
  and, for a cross-data-set test, the data set the test split came from (null otherwise).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dermlab.errors import DataError
from dermlab.files.io import file_sha256

FILENAME = "predictions_test.json"


def write_test_record(folder: str | Path, checkpoint: str | Path | None, preprocessing: dict[str, Any] | None,
                      data: dict[str, Any] | None, weights: str | None = None) -> Path:
    """Write ``folder/predictions_test.json``; ``checkpoint`` is the file tested (hashed now) or None, ``weights``
    the fingerprint of the weights tested."""
    path = Path(folder) / FILENAME
    tested = None if checkpoint is None else Path(checkpoint).resolve()
    record = {"checkpoint": {"path": None if tested is None else str(tested),
                             "sha256": None if tested is None else file_sha256(tested)},
              "weights": weights, "preprocessing": preprocessing, "data": data}
    path.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return path


def read_test_record(folder: str | Path) -> dict[str, Any] | None:
    """``folder/predictions_test.json``, or None where the run has none (tested before this record existed).

    Raises:
        DataError: the file is not valid JSON (named).
    """
    path = Path(folder) / FILENAME
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise DataError(f"'{path}' is not valid JSON ({error}); test the checkpoint again to rewrite it") from None
