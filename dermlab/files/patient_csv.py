"""Patient metadata a user gives beside images (``dermlab classify --metadata CSV``, a model package's ``predict``):
the columns it may come under, one row per image, parsed by the suite's one reading of the patient fields
(:func:`dermlab.files.metadata.patient_fields`). Plain pandas: no torch, no Lightning.

A field may come under the suite's name (``age``, ``sex``, ``localization``) or the official column of the data
sets that ship it: ISIC's ``age_approx`` (ISIC 2019 / 2020 / 2024 and the archive), ``age_approximate`` (ISIC
2017), ``anatom_site_general`` and ``anatom_site_general_challenge`` (ISIC 2019 / 2020); HAM10000's are the
suite's. In a CSV each row names its image in a column ``image``, ``image_id``, ``image_name`` or ``isic_id``,
matched to the image file's stem (``ISIC_0000001`` for ``ISIC_0000001.jpg``; a value with an extension is matched
by its stem too).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from dermlab.errors import DataError
from dermlab.files.listing import IMAGE_SUFFIXES
from dermlab.files.metadata import patient_fields
from dermlab.files.tables import read_csv

#: The columns each patient field may come under, the suite's name first.
FIELD_COLUMNS: dict[str, tuple[str, ...]] = {
    "age": ("age", "age_approx", "age_approximate"),
    "sex": ("sex",),
    "localization": ("localization", "anatom_site_general", "anatom_site_general_challenge"),
}
#: The columns that may name each row's image in a metadata CSV.
IMAGE_COLUMNS = ("image", "image_id", "image_name", "isic_id")


def field_column(columns: Sequence[str], field: str) -> str | None:
    """The column of ``columns`` that holds ``field`` (:data:`FIELD_COLUMNS`, any case), None when none does."""
    by_lower = {str(c).strip().lower(): c for c in columns}
    return next((by_lower[name] for name in FIELD_COLUMNS.get(field, (field,)) if name in by_lower), None)


def how_to_give(fields: Sequence[str]) -> str:
    """A sentence naming each field's accepted columns and how a missing value is written."""
    names = "; ".join(f"{f}: {' or '.join(FIELD_COLUMNS.get(f, (f,)))}" for f in fields)
    return (f"columns {names} (age in years; leave a value empty, NaN or 'unknown' where it is not known: missing is "
            "a category of its own)")


def patient_table(metadata: pd.DataFrame | Mapping[str, Sequence[Any]], fields: Sequence[str], ids: Sequence[str],
                  source: str) -> pd.DataFrame:
    """The patient fields ``fields`` of ``metadata`` (one row per image of ``ids``, in that order) as
    :func:`~dermlab.files.metadata.patient_fields` reads them: ``age`` float years (NaN missing), text ``unknown``
    where missing. Columns are found under any name of :data:`FIELD_COLUMNS`; others are ignored. A frame with an
    image column is put in the images' order first (:func:`in_image_order`).

    Args:
        metadata: a DataFrame or a mapping of column name → values (one per image).
        fields: the patient fields needed, in order.
        ids: the images' names, for errors (row ``k`` is image ``ids[k]``).
        source: what errors call ``metadata`` (a CSV's path, "the metadata given to predict").

    Raises:
        DataError: a row count other than ``len(ids)``, an image column naming other images, a needed field with
            no column (naming the field, the columns it may have and ``source``), or an age that is not a number ≥ 0
            (naming ``source``, the row and the image).
    """
    frame = metadata if isinstance(metadata, pd.DataFrame) else pd.DataFrame(dict(metadata))
    if len(frame) != len(ids):
        raise DataError(f"{source} has {len(frame)} row(s) for {len(ids)} image(s): give one row per image, in the "
                        "images' order")
    frame = in_image_order(frame, ids, source)
    columns: dict[str, list[Any]] = {}
    for name in fields:
        column = field_column(list(frame.columns), name)
        if column is None:
            raise DataError(f"{source} has no column for the patient field {name!r} (give it as "
                            f"{' or '.join(FIELD_COLUMNS.get(name, (name,)))}; its columns: "
                            f"{', '.join(map(str, frame.columns)) or 'none'}). The model needs "
                            f"{how_to_give(fields)}.")
        columns[name] = frame[column].tolist()
    return patient_fields(list(ids), source.strip("'"), **columns).reset_index(drop=True)  # it quotes the source


def in_image_order(frame: pd.DataFrame, ids: Sequence[str], source: str) -> pd.DataFrame:
    """``frame`` with its rows in the order of ``ids`` when it has an image column (:data:`IMAGE_COLUMNS`), matched
    by :func:`image_key`; a frame without one is taken to be in that order already.

    Raises:
        DataError: the image column names other images than ``ids`` (the first that differs named).
    """
    column = next((c for c in frame.columns if str(c).strip().lower() in IMAGE_COLUMNS), None)
    if column is None:
        return frame
    keys, wanted = [image_key(v) for v in frame[column]], [image_key(Path(i).name) for i in ids]
    if keys == wanted:
        return frame
    position = {key: row for row, key in enumerate(keys)}
    missing = next((i for i, key in zip(ids, wanted, strict=True) if key not in position), None)
    if missing is not None or len(position) != len(keys):
        raise DataError(f"{source}'s {column} column does not name the images given"
                        + (f" (no row for {missing})" if missing is not None else " (an image named twice)")
                        + ": give one row per image")
    return frame.iloc[[position[key] for key in wanted]].reset_index(drop=True)


def image_key(value: Any) -> str:
    """The stem an image column's value or a file's name is matched by (``ISIC_0000001`` for
    ``ISIC_0000001.jpg``, ``images/ISIC_0000001.JPG`` or ``ISIC_0000001``)."""
    text = str(value).strip()
    name = Path(text).name
    stem = Path(name).stem
    return stem if Path(name).suffix.lower() in IMAGE_SUFFIXES else name


def read_patient_csv(path: Path, images: Sequence[Path], fields: Sequence[str]) -> pd.DataFrame:
    """The rows of the metadata CSV ``path`` for ``images`` (one per image, in their order), the ``fields`` parsed
    (:func:`patient_table`).

    Raises:
        DataError: no such or unreadable file (:func:`dermlab.files.tables.read_csv`); no image column
            (:data:`IMAGE_COLUMNS`); an image named twice; a needed field with no column; a bad age in any row (the
            CSV, its row and the image named); an image with no row (naming the image and the CSV).
    """
    # the suite's one reader of tables people hand it: BOM, CRLF, spaces, .tab twins; European exports refused
    table = read_csv(path, what="--metadata CSV", hint="Give a CSV with one row per image.", dtype=str,
                     keep_default_na=False)
    by_lower = {str(c).strip().lower(): c for c in table.columns}
    image_column = next((by_lower[name] for name in IMAGE_COLUMNS if name in by_lower), None)
    if image_column is None:
        raise DataError(f"--metadata '{path}' has no image column: name each row's image in a column "
                        f"{', '.join(IMAGE_COLUMNS)} (the file's name without its extension, e.g. ISIC_0000001); "
                        f"its columns: {', '.join(map(str, table.columns)) or 'none'}")
    keys = [image_key(v) for v in table[image_column]]
    rows = {}
    for row, key in enumerate(keys):
        if key in rows:
            raise DataError(f"--metadata '{path}' names image {key!r} twice (rows {rows[key] + 2} and {row + 2}): "
                            "give one row per image")
        rows[key] = row
    parsed = patient_table(table, fields, keys, f"'{path}'")  # every row, so an error names the file's own row
    wanted = []
    for image in images:
        if image_key(image.name) not in rows:
            raise DataError(f"image '{image}' has no row in --metadata '{path}' (its {image_column} column matches "
                            f"file names without extension, e.g. {image_key(image.name)}): add a row for it, with "
                            "empty fields where its values are unknown")
        wanted.append(rows[image_key(image.name)])
    return parsed.iloc[wanted].reset_index(drop=True)
