"""Patient and image metadata: the one tidying every data module applies to its metadata columns (sex, age,
anatomical site, skin type, ...) before a subgroup table (:mod:`dermlab.stats.subgroups`) counts them or the
metadata branch (:mod:`datamodules.metadata`) encodes them.

Values become stripped text, missing ones (empty, NaN, None, ``unknown``, ``n/a``, ``-``, ``?`` in any case)
``unknown``; an age is a float of years (:func:`patient_fields`) or one of the ``AGE_BANDS``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from dermlab.errors import DataError

UNKNOWN = "unknown"
AGE_BANDS = ((30, "0-29"), (45, "30-44"), (60, "45-59"), (75, "60-74"), (math.inf, "75+"))  # (upper bound, name)
AGE_BAND_NAMES = tuple(name for _, name in AGE_BANDS)
MISSING = {"", "nan", "none", "unknown", "na", "n/a", "-", "--", "?"}


def group_value(value: Any) -> str:
    """A metadata value as a group name: stripped text; empty, NaN, None, ``unknown`` (any case) → ``unknown``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return UNKNOWN
    text = str(value).strip()
    return UNKNOWN if text.lower() in MISSING else text


def age_band(age: Any) -> str:
    """The age band of an age in years: ``0-29``, ``30-44``, ``45-59``, ``60-74``, ``75+``; ``unknown`` when missing.

    Raises:
        ValueError: an age that is neither missing nor a number ≥ 0.
    """
    years = age_years(age)
    if math.isnan(years):
        return UNKNOWN
    return next(name for upper, name in AGE_BANDS if years < upper)


#: The patient fields read from every data set that ships them, one name each, ``age`` (years), ``sex`` and
#: ``localization`` (the anatomic site, ISIC's ``anatom_site_general`` and HAM10000's ``localization``).
PATIENT_FIELDS = ("age", "sex", "localization")


def patient_fields(ids: Sequence[str], source: str, **columns: Sequence) -> pd.DataFrame:
    """A patient-metadata frame indexed by ``image_id``: ``age=`` becomes a float column of years (NaN where
    missing), any other column text through :func:`group_value` (``unknown`` where missing).

    Raises:
        DataError: an age that is neither missing nor a number ≥ 0, naming ``source``, the row (file row: index + 2)
            and the image.
    """
    frame = pd.DataFrame(index=pd.Index(list(ids), name="image_id"))
    for name, values in columns.items():
        values = list(values)
        if name == "age":
            years = []
            for row, (image, value) in enumerate(zip(ids, values, strict=True)):
                try:
                    years.append(age_years(value))
                except ValueError as error:
                    raise DataError(f"'{source}' row {row + 2} ({image}): {error}; give the age in years or "
                                    "leave it empty.") from None
            frame["age"] = np.array(years, dtype=float)
        else:
            frame[name] = [group_value(v) for v in values]
    return frame


def age_years(age: Any) -> float:
    """An age in years as a float; NaN when missing.

    Raises:
        ValueError: an age that is neither missing nor a number ≥ 0.
    """
    if group_value(age) == UNKNOWN:
        return math.nan
    try:
        years = float(age)
    except (TypeError, ValueError):
        raise ValueError(f"age {age!r} is not a number") from None
    if not years >= 0:
        raise ValueError(f"age {age!r} is negative")
    return years


def subgroups_of(patient: pd.DataFrame) -> pd.DataFrame:
    """The subgroup attributes of a patient-metadata frame (:func:`patient_fields`): ``age`` becomes ``age_band``
    (:func:`age_band`), the other columns stay as they are."""
    frame = pd.DataFrame(index=patient.index)
    for name in patient.columns:
        if name == "age":
            frame["age_band"] = [age_band(v) for v in patient["age"]]
        else:
            frame[name] = patient[name].tolist()
    return frame


def attributes(ids: Sequence[str], source: str, **columns: Sequence) -> pd.DataFrame:
    """A subgroup-attribute frame indexed by ``image_id``: ``age=`` becomes ``age_band``, any other column keeps its
    name; every value goes through :func:`group_value` (:func:`subgroups_of` of :func:`patient_fields`).

    Raises:
        DataError: an age that is not a number, naming ``source``, the row (file row: index + 2) and the image.
    """
    return subgroups_of(patient_fields(ids, source, **columns))


def patient_rows(frame: pd.DataFrame, ids: Sequence[str]) -> pd.DataFrame:
    """The rows of a patient-metadata ``frame`` (:func:`patient_fields`) for ``ids``, in that order; an image the
    frame lacks has a NaN age and ``unknown`` text fields (the first row of an id listed twice counts)."""
    frame = frame[~frame.index.duplicated()].reindex(pd.Index(list(ids), name="image_id"))
    for name in frame.columns:
        if name != "age":
            frame[name] = frame[name].fillna(UNKNOWN)
    return frame


def for_images(frame: pd.DataFrame, ids: Sequence[str]) -> pd.DataFrame:
    """The rows of a metadata ``frame`` (indexed by image id) for ``ids``, in that order; an image the frame lacks
    is ``unknown`` in every column (the first row of an id listed twice counts)."""
    frame = frame[~frame.index.duplicated()]
    return frame.reindex(pd.Index(list(ids), name="image_id")).fillna(UNKNOWN)
