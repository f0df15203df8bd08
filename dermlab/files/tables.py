"""The one reader of the tables people hand the suite: ground truths, metadata, submissions, lists.

Every such file is read as its users have it, whatever saved it:

* UTF-8 with or without a byte-order mark (Excel's "CSV UTF-8"), LF or CRLF line ends;
* spaces around header names and values (a spreadsheet's export keeps them) are removed, so ``ISIC_0000000 ``
  finds ``ISIC_0000000.jpg``; where removing them would hide an error it is refused with the row named: an id left
  empty, two ids or two header names that become one;
* Harvard Dataverse's archival form of a tabular file, tab-separated under ``.tab`` (``HAM10000_metadata.tab``):
  where ``<name>.csv`` is expected and absent, ``<name>.tab`` is read and the log says so. A tab-separated file
  saved under ``.csv`` is read too.

Refused, naming the file, the row and how to re-export: a European-locale export (``;`` between values, a decimal
comma), a file that is not UTF-8 (a Windows or Mac code page) or is UTF-16 (Excel's "Unicode Text").

:func:`read_table` is the entry point for tables with named columns; :func:`read_csv` is the pandas call beneath it
(for a reader that checks its columns itself) and :func:`read_text` the decoded text (for the submission validator,
which keeps the official scorer's parse). This module needs pandas alone (no OpenCV), so the scorer can import it.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dermlab.errors import DataError

log = logging.getLogger(__name__)

HEAD_BYTES = 1 << 16  # how much of a file is looked at to tell its separator and encoding
TAB_SUFFIXES = (".tab", ".tsv")
_DECIMAL_COMMA = re.compile(r"[+-]?\d+,\d+")


def _reexport(separator: str) -> str:
    """How to re-export a European-locale table whose values are separated by ``separator``."""
    return ("re-export it as 'CSV UTF-8 (Comma delimited)' with ',' between values and '.' as the decimal point "
            "(Excel: File > Options > Advanced, untick 'Use system separators'; LibreOffice: Save As 'Text CSV', "
            "'Edit filter settings', field delimiter ','), or convert it: "
            f"pandas.read_csv(path, sep={separator!r}, decimal=',').to_csv(path, index=False)")


def locate(path: str | Path) -> Path | None:
    """``path`` if it is a file; else, for ``<name>.csv``, ``<name>.tab`` (the tab-separated form Harvard Dataverse
    serves), logged when read; else None."""
    path = Path(path)
    if path.is_file():
        return path
    twin = path.with_suffix(".tab")
    if path.suffix.lower() == ".csv" and twin.is_file():
        log.info("'%s' is absent: reading '%s', the tab-separated form Harvard Dataverse serves", path.name, twin)
        return twin
    return None


def _require(path: Path, what: str, hint: str) -> Path:
    found = locate(path)
    if found is None:
        looked = f" (nor '{path.with_suffix('.tab').name}')" if path.suffix.lower() == ".csv" else ""
        raise DataError(f"{what} '{path}' does not exist{looked}. {hint}".strip())
    return found


def _row_of(data: bytes, offset: int) -> int:
    return data[:offset].count(b"\n") + 1


def _not_utf8(path: Path, row: int, bad: bytes) -> DataError:
    return DataError(f"'{path}' is not UTF-8 text: row {row} holds the byte(s) {bad!r}, as a file saved in a Windows "
                     "or Mac code page has ('CSV (Comma delimited)' in Excel); re-export it as 'CSV UTF-8 (Comma "
                     "delimited)'.")


def _decode_head(path: Path) -> str:
    with path.open("rb") as stream:
        data = stream.read(HEAD_BYTES + 1)
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DataError(f"'{path}' is UTF-16 text (Excel's 'Unicode Text'); re-export it as 'CSV UTF-8 (Comma "
                        "delimited)'.")
    if len(data) > HEAD_BYTES:  # cut at a line end, not inside a character
        data = data[: data.rfind(b"\n", 0, HEAD_BYTES) + 1] or data[:HEAD_BYTES]
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise _not_utf8(path, _row_of(data, error.start), data[error.start:error.end]) from None


def _european(path: Path, lines: list[str], row: int) -> DataError:
    decimal = ""
    for number, line in enumerate(lines[row - 1:], start=row):
        value = next((v.strip() for v in line.split(";") if _DECIMAL_COMMA.fullmatch(v.strip())), None)
        if value is not None:
            decimal = f", and row {number} writes the number {value!r} with a decimal comma"
            break
    return DataError(f"'{path}' is a spreadsheet export in a European locale: row {row} is separated by ';'{decimal}. "
                     f"The suite reads comma-separated values with a decimal point: {_reexport(';')}.")


def sniff(path: Path, head: str) -> str:
    """The separator of ``path`` from its first lines ``head``: a tab for ``.tab`` / ``.tsv`` or a tab-separated
    header without commas, else a comma.

    Raises:
        DataError: a European-locale export (its first line holds at least as many ';' as ','), naming the row and
            the first value with a decimal comma.
    """
    lines = head.splitlines()
    row = next((i for i, line in enumerate(lines, start=1) if line.strip()), 1)
    first = lines[row - 1] if lines else ""
    if path.suffix.lower() in TAB_SUFFIXES or ("\t" in first and "," not in first):
        return "\t"
    if ";" in first and first.count(";") >= first.count(","):
        raise _european(path, lines, row)
    return ","


def read_text(path: str | Path, what: str = "table", hint: str = "") -> tuple[str, str]:
    """The whole text of a (small) table, byte-order mark dropped, and its separator (see :func:`sniff`).

    Raises:
        DataError: the file is missing, not UTF-8 (the row named), UTF-16, or a European-locale export.
    """
    path = _require(Path(path), what, hint)
    separator = sniff(path, _decode_head(path))
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig"), separator
    except UnicodeDecodeError as error:
        raise _not_utf8(path, _row_of(data, error.start), data[error.start:error.end]) from None


def read_header(path: str | Path, what: str = "table", hint: str = "") -> tuple[Path, list[str]]:
    """The file read (``path`` or its ``.tab`` twin) and the fields of its first line, spaces removed (for a
    headerless file: its first row).

    Raises:
        DataError: as :func:`read_text`.
    """
    found = _require(Path(path), what, hint)
    head = _decode_head(found)
    separator = sniff(found, head)
    line = next((line for line in head.splitlines() if line.strip()), "")
    fields = next(csv.reader(io.StringIO(line), delimiter=separator), [])
    return found, [field.strip() for field in fields]


def _strip_names(path: Path, table: pd.DataFrame) -> pd.DataFrame:
    names = [str(name).strip() for name in table.columns]
    seen: dict[str, int] = {}
    for number, name in enumerate(names, start=1):
        if name in seen:
            raise DataError(f"'{path}' has the column '{name}' twice (columns {seen[name]} and {number}) once the "
                            "spaces around its names are removed; keep one.")
        seen[name] = number
    table.columns = names
    return table


def _strip_values(table: pd.DataFrame) -> pd.DataFrame:
    for name in table.columns:
        if pd.api.types.is_object_dtype(table[name]) or pd.api.types.is_string_dtype(table[name]):
            stripped = table[name].str.strip()
            table[name] = stripped.mask(stripped.eq(""))
    return table


def read_csv(path: str | Path, what: str = "table", hint: str = "", strip: bool = True, **options: Any
             ) -> pd.DataFrame:
    """``pandas.read_csv`` of a table as users have it (module docstring): the ``.tab`` twin where ``path`` is an
    absent ``.csv``, UTF-8 with or without a byte-order mark, its separator sniffed; with ``strip``, spaces around
    header names and text values removed (an all-space value becomes empty). ``options`` go to pandas
    (``dtype``, ``header``, ``usecols``, ...). The file read is ``table.attrs['path']``.

    Raises:
        DataError: the file is missing (``what``, ``hint``), not UTF-8, a European-locale export, does not parse,
            or has two header names equal once stripped.
    """
    path = _require(Path(path), what, hint)
    separator = sniff(path, _decode_head(path))
    options = {"skipinitialspace": True, **options}
    try:
        table = pd.read_csv(path, sep=separator, encoding="utf-8-sig", **options)
    except UnicodeDecodeError:
        data = path.read_bytes()
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise _not_utf8(path, _row_of(data, error.start), data[error.start:error.end]) from None
        raise
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        kind = "tab" if separator == "\t" else "comma"
        raise DataError(f"cannot parse '{path}' as {kind}-separated values ({error}). {hint}".strip()) from None
    table = _strip_values(_strip_names(path, table)) if strip else table
    table.attrs.update(path=path, separator=separator)
    return table


def _check_decimal_commas(path: Path, table: pd.DataFrame, columns: list[str], first_row: int) -> None:
    """A tab-separated export from a European locale writes ``0,5``: refused, naming the row and column."""
    for column in columns:
        values = table[column].dropna()
        hits = values[values.str.fullmatch(_DECIMAL_COMMA.pattern)]
        if len(hits):
            row = table.index.get_loc(hits.index[0])
            raise DataError(f"'{path}' row {row + first_row} column '{column}' writes the number {hits.iloc[0]!r} "
                            f"with a decimal comma (a spreadsheet export in a European locale): {_reexport(chr(9))}.")


def _check_ids(path: Path, table: pd.DataFrame, column: str, raw: pd.Series | None, first_row: int) -> None:
    ids = table[column]
    empty = np.flatnonzero(ids.isna().to_numpy())
    if len(empty):
        raise DataError(f"'{path}' row {empty[0] + first_row} has no {column} (an empty or all-space value); "
                        "fill it in or remove the row.")
    duplicated = ids[ids.duplicated()].unique()
    if len(duplicated):
        first = np.flatnonzero(ids.eq(duplicated[0]).to_numpy())
        rows = " and ".join(str(i + first_row) for i in first[:2])
        spaces = ""
        if raw is not None and raw.iloc[first].nunique() > 1:
            spaces = f", which differ only in the spaces around them ({', '.join(map(repr, raw.iloc[first[:2]]))})"
        raise DataError(f"'{path}' lists {column} {', '.join(duplicated[:5])} more than once ({duplicated[0]} on "
                        f"rows {rows}{spaces}); each image must appear exactly once.")
    if raw is not None:
        changed = np.flatnonzero(raw.ne(ids).to_numpy())
        if len(changed):
            log.info("'%s': removed the spaces around %d %s value(s) (first: row %d, %r)", path, len(changed), column,
                     changed[0] + first_row, raw.iloc[changed[0]])


def read_table(path: str | Path, columns: Iterable[str], header: bool = True, hint: str = "",
               optional: Iterable[str] | None = None, what: str = "ground-truth file") -> pd.DataFrame:
    """A table whose ``columns`` must all be present, every value a string (ids stay ``ISIC_0000000``), read as
    :func:`read_csv` reads (``.tab`` twin, byte-order mark, CRLF, spaces removed). The first of ``columns`` is the
    id column: every row needs one, and none twice.

    With ``header=False`` the file has no header row and ``columns`` name its columns in order. With ``optional``
    (a header is needed) only ``columns`` and those of ``optional`` that the file has are read: a wide CSV
    (ISIC 2024's 55-column metadata of 401,059 rows) then costs the memory of the columns used alone. The file read
    is ``table.attrs['path']`` (``path`` or its ``.tab`` twin).

    Raises:
        DataError: naming the file (and row): missing, a needed column absent (the header expected is given), no
            rows, an id empty or listed twice (also when two differ only in spaces), a decimal comma in a
            tab-separated file, or what :func:`read_csv` refuses.
    """
    columns = list(columns)
    keep = None if optional is None else {*columns, *optional}
    options = {"dtype": str, "strip": False, "what": what, "hint": hint}
    if header:
        table = read_csv(path, usecols=None if keep is None else lambda name: str(name).strip() in keep, **options)
    else:
        table = read_csv(path, header=None, **options)
        if table.shape[1] != len(columns):
            raise DataError(f"'{table.attrs['path']}' has {table.shape[1]} columns, expected {len(columns)} "
                            f"({', '.join(columns)}) with no header row.")
        table.columns = columns
    found = table.attrs["path"]
    _strip_names(found, table)
    raw = table[columns[0]].copy() if columns[0] in table.columns else None
    table = _strip_values(table)
    missing = [c for c in columns if c not in table.columns]
    if missing:
        present = table.columns if keep is None else read_header(found)[1]
        raise DataError(f"'{found}' lacks column(s) {', '.join(missing)}; it has {', '.join(map(str, present))}. "
                        f"Expected header: {','.join(columns)}.")
    if table.empty:
        raise DataError(f"'{found}' has no rows. {hint}".strip())
    first_row = 2 if header else 1
    if table.attrs["separator"] == "\t":
        _check_decimal_commas(found, table, list(table.columns), first_row)
    _check_ids(found, table, columns[0], raw, first_row)
    return table
