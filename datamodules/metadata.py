"""Patient metadata as a network input: the encoding of the ISIC 2019 winners' metadata branch, fitted on the
training split only. Plain Python and numpy: no Lightning, no torch.

Gessert et al., "Skin lesion classification using ensembles of multi-resolution EfficientNets with meta data",
MethodsX 7 (2020) 100864, doi:10.1016/j.mex.2020.100864 (first place in both tasks of ISIC 2019), feed age,
anatomic site and sex to a small dense network beside the CNN: age as a number, sex and site one-hot. The suite
encodes each field so that a missing value is a category of its own, never a silent zero or a dropped row:

* ``age``: two columns, (years − μ) / σ with μ, σ the mean and standard deviation of the *training* images' known
  ages (0 where the age is missing), and a 0/1 ``age=missing`` indicator;
* a text field (``sex``, ``localization``): one-hot over the categories the *training* images have, plus a
  ``<field>=missing`` column, always present. A value missing in the file (empty, ``unknown``, ...,
  :func:`dermlab.files.metadata.group_value`) is ``missing``; so is a category the training split never had
  (an *unseen* category at validation or test time: the network has learnt nothing for it), which
  :meth:`MetadataEncoding.encode` counts per field and value so the data module can say so. Text is matched
  ignoring case and extra spaces, with sex ``M`` / ``F`` spelled out (:func:`category_key`): ``Male`` is ``male``.

Every field's encoding of "missing" is its :attr:`FieldSlice.missing` vector: the branch's field dropout (the
winners' ``drop_augment``, :mod:`lightning_modules.nets.metadata_branch`) writes it during training.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from dermlab.errors import DataError
from dermlab.files.metadata import PATIENT_FIELDS, UNKNOWN

MISSING = "missing"  #: the category of a missing or unseen value in the column names


@dataclass(frozen=True)
class FieldSlice:
    """Where one field sits in the encoded vector: columns ``start:stop``, and the values a missing one takes
    there (``missing``, length ``stop - start``)."""

    name: str
    start: int
    stop: int
    missing: tuple[float, ...]


@dataclass(frozen=True)
class MetadataEncoding:
    """The encoding of the patient fields ``fields`` fitted on a training split (see the module docstring).

    ``age_mean`` / ``age_std`` are in years (None without ``age``); ``categories`` maps each text field to its
    training categories, sorted.
    """

    fields: tuple[str, ...]
    age_mean: float | None = None
    age_std: float | None = None
    categories: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def fit(cls, frame: pd.DataFrame, fields: Sequence[str], source: str) -> MetadataEncoding:
        """The encoding of ``fields`` fitted on ``frame``, the training split's patient metadata
        (:meth:`datamodules.datasets.reader.SplitReader.patient_metadata`).

        Args:
            frame: one row per training image; ``age`` in years (NaN missing), text fields ``unknown`` where missing.
            fields: the fields to encode, in order (each one of :data:`~dermlab.files.metadata.PATIENT_FIELDS`).
            source: the data set named in errors (its config name and folder).

        Raises:
            DataError: an unknown or repeated field, a field the data set does not ship (naming the field, the data
                set and the fields it has), or a field missing for every training image.
        """
        fields = tuple(fields)
        unknown = [f for f in fields if f not in PATIENT_FIELDS]
        if unknown or len(set(fields)) != len(fields) or not fields:
            raise DataError(f"metadata_fields {list(fields)}: give one or more distinct fields of "
                            f"{', '.join(PATIENT_FIELDS)}" + (f" ({unknown[0]!r} is none of them)" if unknown else ""))
        if not len(frame.columns):
            raise DataError(f"data set {source} ships no patient metadata: train it on images only (leave out "
                            "-c experiments/base/metadata.yaml, or set data.init_args.metadata_fields to null)")
        absent = [f for f in fields if f not in frame.columns]
        if absent:
            has = ", ".join(frame.columns) or "no patient metadata"
            raise DataError(f"metadata field {absent[0]!r} is not in data set {source}: its files give {has}. Drop "
                            f"{absent[0]!r} from data.init_args.metadata_fields (or use a data set that ships it).")
        age_mean = age_std = None
        categories: dict[str, tuple[str, ...]] = {}
        for name in fields:
            column = frame[name]
            if name == "age":
                known = column.to_numpy(dtype=float)
                known = known[~np.isnan(known)]
                if not len(known):
                    raise DataError(f"metadata field 'age' is missing for every training image of {source}; drop it "
                                    "from data.init_args.metadata_fields")
                age_mean, spread = float(known.mean()), float(known.std())
                age_std = spread if spread > 0 else 1.0
            else:
                values = sorted({category_key(v, name) for v in column if str(v) != UNKNOWN})
                if not values:
                    raise DataError(f"metadata field {name!r} is missing for every training image of {source}; drop "
                                    "it from data.init_args.metadata_fields")
                categories[name] = tuple(values)
        return cls(fields, age_mean, age_std, categories)

    # --- the layout ----------------------------------------------------------------------------------------
    def field_columns(self, name: str) -> list[str]:
        """The column names of field ``name``: ``age``, ``age=missing``; or ``<field>=<category>`` …
        ``<field>=missing``."""
        if name == "age":
            return ["age", f"age={MISSING}"]
        return [f"{name}={c}" for c in self.categories[name]] + [f"{name}={MISSING}"]

    @property
    def columns(self) -> list[str]:
        """Every column of the encoded vector, in order."""
        return [c for name in self.fields for c in self.field_columns(name)]

    @property
    def width(self) -> int:
        """The length of the encoded vector."""
        return len(self.columns)

    @property
    def layout(self) -> list[FieldSlice]:
        """Each field's columns and its encoding of a missing value."""
        slices, start = [], 0
        for name in self.fields:
            width = len(self.field_columns(name))
            missing = (0.0, 1.0) if name == "age" else (0.0,) * (width - 1) + (1.0,)
            slices.append(FieldSlice(name, start, start + width, missing))
            start += width
        return slices

    # --- encoding --------------------------------------------------------------------------------------------
    def encode(self, frame: pd.DataFrame) -> tuple[np.ndarray, dict[str, Counter]]:
        """The (N, :attr:`width`) float32 encoding of ``frame``'s rows, and per text field the unseen categories
        met (value → images), all encoded as missing.

        Raises:
            DataError: ``frame`` lacks one of :attr:`fields` (named).
        """
        absent = [f for f in self.fields if f not in frame.columns]
        if absent:
            raise DataError(f"metadata field {absent[0]!r} is not in the given metadata (it has "
                            f"{', '.join(frame.columns) or 'none'})")
        out = np.zeros((len(frame), self.width), dtype=np.float32)
        unseen: dict[str, Counter] = {}
        for part in self.layout:
            column = frame[part.name]
            if part.name == "age":
                years = column.to_numpy(dtype=float)
                known = ~np.isnan(years)
                out[known, part.start] = (years[known] - self.age_mean) / self.age_std
                out[~known, part.start + 1] = 1.0
                continue
            index = {category_key(c, part.name): k for k, c in enumerate(self.categories[part.name])}
            missing_column = part.stop - 1
            counter: Counter = Counter()
            for row, value in enumerate(column):
                value = str(value)
                k = index.get(category_key(value, part.name))
                if k is None:
                    if value != UNKNOWN:
                        counter[value] += 1
                    out[row, missing_column] = 1.0
                else:
                    out[row, part.start + k] = 1.0
            if counter:
                unseen[part.name] = counter
        return out, unseen

    # --- JSON -------------------------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """JSON values: ``fields``, ``age`` (``mean`` / ``std`` in years) and ``categories``, plus ``columns`` (for
        the reader; :meth:`from_json` ignores it)."""
        return {"fields": list(self.fields),
                "age": None if self.age_mean is None else {"mean": self.age_mean, "std": self.age_std},
                "categories": {k: list(v) for k, v in self.categories.items()}, "columns": self.columns}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MetadataEncoding:
        """The encoding :meth:`to_json` wrote (a checkpoint's hyper-parameter, a package's ``config.json``).

        Raises:
            DataError: a malformed record.
        """
        try:
            age = data.get("age") or {}
            encoding = cls(tuple(data["fields"]), age.get("mean"), age.get("std"),
                           {k: tuple(v) for k, v in (data.get("categories") or {}).items()})
        except (KeyError, TypeError, AttributeError) as error:
            raise DataError(f"malformed metadata encoding ({error!r}): {data!r}") from None
        missing = [f for f in encoding.fields if f != "age" and f not in encoding.categories]
        if missing or ("age" in encoding.fields and not (encoding.age_std and math.isfinite(encoding.age_std))):
            raise DataError(f"malformed metadata encoding: no categories / age statistics for {missing or ['age']}")
        return encoding


#: Abbreviations a spreadsheet may use for a category, per field (after case and spaces are folded).
SYNONYMS = {"sex": {"m": "male", "f": "female"}}


def category_key(value: str, field: str = "") -> str:
    """What a text value of ``field`` is matched to the training categories by: case and runs of spaces ignored
    (``Male``, ``MALE `` and ``male`` are one category; ``lower  extremity`` is ``lower extremity``), and the
    field's :data:`SYNONYMS` spelled out (sex ``M`` is ``male``)."""
    key = " ".join(str(value).split()).casefold()
    return SYNONYMS.get(field, {}).get(key, key)


def unseen_summary(unseen: dict[str, Counter]) -> str:
    """``localization: palms/soles ×3, …`` for a log line (at most five values per field)."""
    parts = []
    for name, counter in unseen.items():
        shown = ", ".join(f"{value} ×{count}" for value, count in counter.most_common(5))
        more = len(counter) - 5
        parts.append(f"{name}: {shown}" + (f" and {more} more" if more > 0 else ""))
    return "; ".join(parts)
