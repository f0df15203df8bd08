"""Checked readers for the official CSVs and images: every failure names the file and the fix."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

from dermlab.errors import DataError


def require_dir(path: Path, what: str, hint: str) -> Path:
    """Return ``path`` if it is a directory, else stop with a message saying what belongs there."""
    if not path.exists():
        raise DataError(f"{what} '{path}' does not exist. {hint}")
    if not path.is_dir():
        raise DataError(f"{what} '{path}' is not a directory. {hint}")
    return path


def read_table(path: Path, columns: Iterable[str], header: bool = True, hint: str = "") -> pd.DataFrame:
    """Read a CSV whose ``columns`` must all be present; ids stay strings, CRLF or LF alike.

    With ``header=False`` the file has no header row and ``columns`` name its columns in order.
    """
    columns = list(columns)
    if not path.is_file():
        raise DataError(f"ground-truth file '{path}' does not exist. {hint}".strip())
    try:
        if header:
            table = pd.read_csv(path, dtype=str, skipinitialspace=True)
        else:
            table = pd.read_csv(path, dtype=str, header=None, skipinitialspace=True)
            if table.shape[1] != len(columns):
                raise DataError(f"'{path}' has {table.shape[1]} columns, expected {len(columns)} "
                                f"({', '.join(columns)}) with no header row.")
            table.columns = columns
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise DataError(f"cannot parse '{path}' as CSV ({error}). {hint}".strip()) from None
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DataError(f"'{path}' lacks column(s) {', '.join(missing)}; it has {', '.join(map(str, table.columns))}. "
                        f"Expected header: {','.join(columns)}.")
    if table.empty:
        raise DataError(f"'{path}' has no rows. {hint}".strip())
    duplicated = table[columns[0]][table[columns[0]].duplicated()].unique()
    if len(duplicated):
        raise DataError(f"'{path}' lists {columns[0]} {', '.join(duplicated[:5])} more than once; "
                        "each image must appear exactly once.")
    return table


def binary_column(table: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    """Column of 0.0/1.0 labels as an int array; any other value stops with the row that has it."""
    values = pd.to_numeric(table[column], errors="coerce")
    bad = ~values.isin([0.0, 1.0])
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"'{path}' column '{column}' row {row + 2} ({table.iloc[row, 0]}) holds "
                        f"{table[column].iloc[row]!r}; expected 0.0 or 1.0.")
    return values.to_numpy().astype(np.int64)


def image_paths(folder: Path, ids: Iterable[str], listed_in: Path, suffix: str = ".jpg") -> list[Path]:
    """Paths of the images ``ids`` in ``folder``; stops naming the first missing ones."""
    present = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
    if not any(name.endswith(suffix) and "_superpixels" not in name for name in present):
        raise DataError(f"no '*{suffix}' images found in '{folder}' (it is empty or missing); "
                        f"it should hold the images listed in '{listed_in}'.")
    ids = list(ids)
    missing = [i for i in ids if f"{i}{suffix}" not in present]
    if missing:
        shown = ", ".join(f"{m}{suffix}" for m in missing[:3])
        raise DataError(f"{len(missing)} image(s) listed in '{listed_in}' are missing from '{folder}' "
                        f"(e.g. {shown}); re-download the images or remove those rows.")
    return [folder / f"{i}{suffix}" for i in ids]


def load_rgb(path: Path) -> np.ndarray:
    """Decode an image to an RGB uint8 array; a truncated or unreadable file names itself."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except FileNotFoundError:
        raise DataError(f"image '{path}' disappeared after the data set was indexed; restore it.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise DataError(f"cannot decode image '{path}' ({error}); the file is corrupt or truncated: "
                        "re-download it or remove it from the ground-truth CSV.") from None
