"""The patient metadata a model package with a metadata branch takes beside each image: what ``config.json`` says
about it, and the user's metadata encoded as the run encoded its training split. Free of Lightning.

A package exported from a run with ``metadata_fields`` (``-c experiments/base/metadata.yaml``; the ISIC 2019
winners' branch, Gessert et al., MethodsX 7 (2020) 100864, doi:10.1016/j.mex.2020.100864) records the encoding in
its network recipe (``architecture.metadata.encoding``, :meth:`datamodules.metadata.MetadataEncoding.to_json`) and
a readable summary at the top of ``config.json`` (``metadata``, :func:`metadata_summary`). Prediction encodes the
user's values with that encoding (:func:`encoded_metadata`): a category the training split never had is encoded as
missing, and counted in a log line.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from datamodules.metadata import MetadataEncoding, unseen_summary
from dermlab.errors import DataError
from dermlab.files.patient_csv import FIELD_COLUMNS, how_to_give, patient_table

log = logging.getLogger(__name__)

#: Metadata as a user gives it, a DataFrame or a mapping of column → values, one row per image, in order.
MetadataValues = pd.DataFrame | Mapping[str, Sequence[Any]]


def package_encoding(config: dict[str, Any]) -> MetadataEncoding | None:
    """The metadata encoding of a package's ``config.json`` (None for an image-only model).

    Raises:
        DataError: a malformed encoding record.
    """
    recipe = (config.get("architecture") or {}).get("metadata")
    return None if recipe is None else MetadataEncoding.from_json(recipe["encoding"])


def metadata_summary(encoding: MetadataEncoding) -> dict[str, Any]:
    """``config.json``'s readable ``metadata`` entry: the fields in order, each with the columns it may be given
    under, its encoding (``age``: (years − mean) / std with a missing indicator; text: one-hot over the training
    categories plus ``missing``) and the encoded columns, and the vector's width."""
    fields: dict[str, Any] = {}
    for name in encoding.fields:
        entry: dict[str, Any] = {"accepted_columns": list(FIELD_COLUMNS.get(name, (name,))),
                                 "encoded_columns": encoding.field_columns(name)}
        if name == "age":
            entry.update(encoding="standardised years with a missing indicator", unit="years",
                         mean=encoding.age_mean, std=encoding.age_std)
        else:
            entry.update(encoding="one-hot over the training split's categories, plus missing",
                         categories=list(encoding.categories[name]))
        fields[name] = entry
    return {"fields": list(encoding.fields), "width": encoding.width, "fitted_on": "the training split",
            "missing": "a value left empty, NaN or 'unknown', or a category the training split never had, is encoded "
                       "as missing (a category of its own)",
            "required": "dermlab classify --metadata CSV (one row per image); ModelPackage.predict(images, "
                        "metadata=DataFrame)",
            "by_field": fields}


def encoded_metadata(encoding: MetadataEncoding | None, metadata: MetadataValues | None, ids: Sequence[str],
                     source: str = "the metadata given") -> np.ndarray | None:
    """The (N, F) float32 encoding of ``metadata`` (one row per image of ``ids``, in order) for a package of
    ``encoding``; None for an image-only package given none. Unseen categories become missing, with a log line
    counting them.

    Args:
        encoding: the package's encoding (:func:`package_encoding`), None for an image-only model.
        metadata: a DataFrame or mapping with the fields under any of :data:`~dermlab.files.patient_csv.FIELD_COLUMNS`.
        ids: the images' names (for errors).
        source: what errors call ``metadata``.

    Raises:
        DataError: metadata for an image-only model; none for a metadata model (naming the fields and how to give
            them); a wrong row count, a missing field column or a bad age
            (:func:`~dermlab.files.patient_csv.patient_table`).
    """
    if encoding is None:
        if metadata is not None:
            raise DataError("this model takes images only (it was trained without patient metadata): give no "
                            "metadata (drop --metadata)")
        return None
    if metadata is None:
        raise DataError(f"this model takes patient metadata beside each image ({', '.join(encoding.fields)}), "
                        "encoded as on its training split: give dermlab classify --metadata CSV (one row per image, "
                        "with an image column), or in Python predict(images, metadata=frame) with a pandas DataFrame "
                        f"(or mapping) of one row per image; {how_to_give(encoding.fields)}")
    frame = patient_table(metadata, encoding.fields, ids, source)
    vectors, unseen = encoding.encode(frame)
    if unseen:
        log.warning("metadata: %d image(s) have a category the model's training split never had (%s): encoded as "
                    "missing", sum(sum(c.values()) for c in unseen.values()), unseen_summary(unseen))
    return vectors
