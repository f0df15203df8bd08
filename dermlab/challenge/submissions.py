"""One submission validator: the official ISIC scorer's rules, for ``dermlab score`` and every submission the
suite writes (:class:`callbacks.submission.SubmissionWriter` checks each file it writes).

The rules are those of ``isic-challenge-scoring`` 5.6 (``load_csv.parse_csv`` and ``validate_rows``); a file it
refuses is refused here, one it accepts is accepted, and each refusal names the rows or columns at fault:

1. UTF-8 text (a byte-order mark and CRLF are fine) with at least two line breaks in its first 2,000 characters
   (a header and one row, each ended), comma-separated (a tab-separated file or a European-locale export with ';'
   and decimal commas is refused, saying how to re-export it);
2. the id column (``image``; ``image_id`` in the ISIC 2017 layout); a ``.jpg`` suffix on an id is dropped, any case;
3. no image twice;
4. exactly the truth's category columns, none missing and none extra (``Unnamed: 0`` is the row index that
   ``DataFrame.to_csv`` writes unless ``index=False``);
5. no empty value;
6. floating-point values only: a word, and also a column of integers alone (``0``/``1``), is refused;
7. every value in [0, 1];
8. exactly the truth's images, none missing (weight-0 images such as ISIC_0035068 included) and none extra
   (an extra image usually means another split was predicted).

Spaces around an id or a header name (a spreadsheet's export keeps them) make the official scorer miss the image
or the column; they are refused here too, naming the row, so the message says what is wrong. The file is decoded
by :func:`dermlab.files.tables.read_text`, the reader of every table the suite is given.

Beyond the official scorer: the ISIC 2016 layout may also come without a header row (``ISIC_xxxxxxx,0.73``, the
2016 challenge's own format), and the ISIC 2017 layout names its id column ``image_id``.

ISIC 2024 (``isic_id,target``), which ``isic-challenge-scoring`` does not cover, is checked by the same rules except
rule 6: its Kaggle scorer refuses only a column that is not numeric, so integers (``0``/``1``) are accepted there
(``integers=True``); values must still lie in [0, 1], the probabilities the competition asks for (its scorer would
rank any number; the threshold metrics and the calibration error here read them as probabilities).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dermlab.errors import DataError
from dermlab.files.tables import read_text

NAMED = 5  # how many rows / images a message names before "and N more"


@dataclass(frozen=True)
class SubmissionLayout:
    """What a submission must hold: ``id_column`` then exactly ``categories`` (probabilities in [0, 1])."""

    id_column: str
    categories: tuple[str, ...]
    headerless: bool = False  # ISIC 2016: a file without a header row is read as id,<category>
    integers: bool = False  # ISIC 2024: a column of integers alone is numbers too (Kaggle's scorer takes it)

    @property
    def header(self) -> str:
        """The header line the submission must start with, ``image,MEL,NV,…`` (without a line break)."""
        return ",".join((self.id_column, *self.categories))


def _named(values: Sequence) -> str:
    values = list(values)
    more = f" and {len(values) - NAMED} more" if len(values) > NAMED else ""
    return ", ".join(str(v) for v in values[:NAMED]) + more


def _parse(path: Path, layout: SubmissionLayout) -> tuple[pd.DataFrame, int]:
    """The table as read, and the file line of its first row (1 without a header row, else 2)."""
    if not path.is_file():
        raise DataError(f"submission '{path}' does not exist.")
    text, separator = read_text(path, "submission")
    if separator != ",":
        raise DataError(f"submission '{path}' is tab-separated; the official scorer reads comma-separated values "
                        "only: save it as CSV.")
    if text[:2000].count("\n") < 2:
        raise DataError(f"submission '{path}' has fewer than two line breaks in its first 2,000 characters: the "
                        "official scorer refuses it; write a header line and one line per image, each ended by a "
                        "line break.")
    headerless = layout.headerless and text.lstrip().startswith("ISIC_")
    try:
        table = pd.read_csv(io.StringIO(text), header=None if headerless else 0, index_col=False,
                            dtype={0 if headerless else layout.id_column: str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise DataError(f"cannot parse submission '{path}' as CSV ({error}).") from None
    if headerless:
        if table.shape[1] != 1 + len(layout.categories):
            raise DataError(f"submission '{path}' has no header and {table.shape[1]} columns; a headerless one "
                            f"holds {layout.header} in this order.")
        table.columns = [layout.id_column, *layout.categories]
    return table, 1 if headerless else 2


def _check_columns(path: Path, table: pd.DataFrame, layout: SubmissionLayout) -> None:
    spaced = [repr(c) for c in table.columns if isinstance(c, str) and c != c.strip()]
    if spaced:
        raise DataError(f"submission '{path}' has spaces around the column name(s) {_named(spaced)} in its header "
                        "(row 1), so the official scorer does not find those columns: remove the spaces; expected "
                        f"header: {layout.header}.")
    if layout.id_column not in table.columns:
        raise DataError(f"submission '{path}' has no '{layout.id_column}' column (its header is "
                        f"{','.join(map(str, table.columns))}); expected header: {layout.header}.")
    columns = [c for c in table.columns if c != layout.id_column]
    missing = [c for c in layout.categories if c not in columns]
    if missing:
        raise DataError(f"submission '{path}' lacks column(s) {_named(missing)}; expected header: {layout.header}.")
    extra = [str(c) for c in columns if c not in layout.categories]
    if extra:
        index = (" ('Unnamed: 0' is the row index that DataFrame.to_csv writes unless index=False)"
                 if any(c.startswith("Unnamed:") for c in extra) else "")
        raise DataError(f"submission '{path}' has extra column(s) {_named(extra)}{index}; expected header: "
                        f"{layout.header}.")


def _rows(ids: pd.Series, where: np.ndarray, first_line: int) -> str:
    return _named([f"row {first_line + i} ({ids.iloc[i] or 'no image id'})" for i in np.flatnonzero(where)])


def _check_values(path: Path, table: pd.DataFrame, ids: pd.Series, layout: SubmissionLayout,
                  first_line: int) -> pd.DataFrame:
    values = table[list(layout.categories)]
    empty = values.isna().any(axis=1).to_numpy()
    if empty.any():
        raise DataError(f"submission '{path}' has empty value(s) in {_rows(ids, empty, first_line)}; "
                        "every image needs a probability in every column.")
    for column in layout.categories:
        if values[column].dtype == np.float64:
            continue
        numbers = pd.to_numeric(values[column], errors="coerce")
        bad = numbers.isna().to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(f"submission '{path}' column '{column}' holds {values[column].iloc[i]!r} on row "
                            f"{first_line + i} ({ids.iloc[i]}), which is not a number.")
        if layout.integers:
            values = values.assign(**{column: numbers.astype(np.float64)})
            continue
        raise DataError(f"submission '{path}' column '{column}' holds integers only (e.g. {values[column].iloc[0]} "
                        f"on row {first_line} ({ids.iloc[0]})); the official scorer refuses a column without "
                        "floating-point values: write them as decimals (1.0).")
    outside = ((values < 0.0) | (values > 1.0)).any(axis=1).to_numpy()
    if outside.any():
        raise DataError(f"submission '{path}' has values outside [0, 1] in {_rows(ids, outside, first_line)}; "
                        "write probabilities.")
    return values


def read_submission(path: str | Path, layout: SubmissionLayout, images: Sequence[str]) -> pd.DataFrame:
    """The probabilities of a submission CSV, checked by the official scorer's rules (module docstring).

    Args:
        path: the submission CSV.
        layout: its id column and categories (the truth's).
        images: the truth's image ids, every one (weight 0 included).

    Returns:
        (len(images), len(categories)) float64 table, indexed by image id in the order of ``images``.

    Raises:
        DataError: naming the rule broken and the rows, images or columns at fault.
    """
    path = Path(path)
    table, first_line = _parse(path, layout)
    _check_columns(path, table, layout)
    ids = table[layout.id_column].fillna("").astype(str).str.replace(r"\.jpg$", "", case=False, regex=True)
    spaced = np.flatnonzero(ids.ne(ids.str.strip()).to_numpy())
    if len(spaced):
        rows = _named([f"row {first_line + i} ({ids.iloc[i]!r})" for i in spaced])
        raise DataError(f"submission '{path}' has spaces around the image id in {rows}, so the official scorer "
                        "finds no such image: remove the spaces (a spreadsheet's export keeps them).")
    repeated = ids[ids.duplicated(keep=False)]
    if len(repeated):
        lines = [f"{image} (rows {', '.join(str(first_line + i) for i in np.flatnonzero(ids == image))})"
                 for image in repeated.unique()]
        raise DataError(f"submission '{path}' lists image(s) more than once: {_named(lines)}; keep one row each.")
    values = _check_values(path, table, ids, layout, first_line)
    expected = pd.Index([str(i) for i in images])
    present = pd.Index(ids)
    missing = expected.difference(present, sort=False)
    if len(missing):
        raise DataError(f"submission '{path}' has no row for {len(missing)} image(s) of the truth: "
                        f"{_named(missing)}.")
    extra = ~ids.isin(expected).to_numpy()
    if extra.any():
        raise DataError(f"submission '{path}' has {int(extra.sum())} image(s) not in the truth: "
                        f"{_rows(ids, extra, first_line)}; was another split predicted?")
    values = values.astype(np.float64).set_axis(present, axis=0)
    return values.loc[expected]

