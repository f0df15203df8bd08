"""Checked readers for the official CSVs and images: every failure names the file and the fix."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageOps, UnidentifiedImageError

from dermlab.errors import DataError
from dermlab.files.hdf5 import is_hdf5_image
from dermlab.files.jpeg import decode_rgb_jpeg
from dermlab.files.listing import IMAGE_SUFFIXES, images_by_stem

log = logging.getLogger(__name__)


def require_dir(path: Path, what: str, hint: str) -> Path:
    """Return ``path`` if it is a directory, else stop with a message saying what belongs there."""
    if not path.exists():
        raise DataError(f"{what} '{path}' does not exist. {hint}")
    if not path.is_dir():
        raise DataError(f"{what} '{path}' is not a directory. {hint}")
    return path


def read_table(path: Path, columns: Iterable[str], header: bool = True, hint: str = "",
               optional: Iterable[str] | None = None) -> pd.DataFrame:
    """Read a CSV whose ``columns`` must all be present; ids stay strings, CRLF or LF alike.

    With ``header=False`` the file has no header row and ``columns`` name its columns in order. With ``optional``
    (a header is needed) only ``columns`` and those of ``optional`` that the file has are read: a wide CSV
    (ISIC 2024's 55-column metadata of 401,059 rows) then costs the memory of the columns used alone.
    """
    columns = list(columns)
    if not path.is_file():
        raise DataError(f"ground-truth file '{path}' does not exist. {hint}".strip())
    keep = None if optional is None else {*columns, *optional}
    try:
        if header:
            table = pd.read_csv(path, dtype=str, skipinitialspace=True,
                                usecols=None if keep is None else lambda name: name in keep)
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
        present = table.columns if keep is None else pd.read_csv(path, nrows=0, skipinitialspace=True).columns
        raise DataError(f"'{path}' lacks column(s) {', '.join(missing)}; it has {', '.join(map(str, present))}. "
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


def image_paths(folder: Path, ids: Iterable[str], listed_in: Path) -> list[Path]:
    """Paths of the images ``ids`` in ``folder``, whatever their extension's case or type (see
    :func:`dermlab.files.listing.list_images`); stops if the folder holds no images at all.

    An id with no file gets ``<folder>/<id>.jpg``; whether each listed image exists is checked by the
    datamodule (``on_bad_image``).
    """
    found = images_by_stem(folder)
    if not found:
        raise DataError(f"no images ({'/'.join(IMAGE_SUFFIXES)}, any case) found in '{folder}' (it is empty or "
                        f"missing); it should hold the images listed in '{listed_in}'.")
    return [found.get(i, folder / f"{i}.jpg") for i in ids]


_CONVERTED_MODES: set[str] = set()


def _to_rgb(image: Image.Image, path: Path) -> np.ndarray:
    """RGB uint8 from any PIL mode; grayscale, RGBA, palette, CMYK and 16-bit are converted, said once per mode."""
    if image.mode == "RGB":
        return np.asarray(image)
    if image.mode not in _CONVERTED_MODES:
        _CONVERTED_MODES.add(image.mode)
        log.warning("converting %s images to 8-bit RGB (first: '%s'); alpha is dropped, 16-bit is scaled", image.mode,
                    path)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        values = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode != "I" or values.max() > 255 else 255.0
        gray = np.clip(values / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    return np.asarray(image.convert("RGB"))


def fit_side(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(width, height) scaled so the longer side is at most ``max_side`` (aspect kept, never enlarged)."""
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


ORIENTATION_TAG = 0x0112  # EXIF Orientation; values 5-8 swap width and height
_SWAPPING_ORIENTATIONS = (5, 6, 7, 8)


def orientation(image: Image.Image) -> int:
    """The EXIF orientation (1-8) of an opened image; 1 (upright) when it has none."""
    try:
        return int(image.getexif().get(ORIENTATION_TAG, 1) or 1)
    except (ValueError, TypeError, SyntaxError, OSError):  # a malformed EXIF block: take it as upright
        return 1


def upright(image: Image.Image) -> Image.Image:
    """``image`` turned as its EXIF orientation says (phone photos store sideways pixels and a tag), so it is
    seen as the camera's user saw it; unchanged without a tag. Images and masks are both read through this."""
    if orientation(image) == 1:
        return image
    return ImageOps.exif_transpose(image)


def open_image(path: Path, data: bytes | None = None) -> Image.Image:
    """Pillow's lazy image of ``path``: a file, or an image stored in an HDF5 file
    (:class:`dermlab.files.hdf5.HDF5Image`), whose bytes (``data``, read here when not given) are opened in memory."""
    if data is None and is_hdf5_image(path):
        data = path.read_bytes()
    return Image.open(io.BytesIO(data) if data is not None else path)


def load_rgb(path: Path, max_side: int | None = None) -> np.ndarray:
    """Decode an image to an upright (EXIF orientation applied) RGB uint8 array (H, W, 3); a truncated or
    unreadable file names itself.

    ``path`` is a file or an image stored in an HDF5 file (:class:`dermlab.files.hdf5.HDF5Image`, ISIC 2024), whose
    bytes go through the same decoders as a file's. Without ``max_side``, RGB JPEGs are decoded by OpenCV
    (:mod:`dermlab.files.jpeg`: the same pixels, 1.35–1.4× faster on ISIC sizes); other images by Pillow. With
    ``max_side`` the image comes back resized so its longer side is at most that; JPEGs are then decoded at reduced
    scale directly (``draft``), which makes the cache fast to fill.

    Raises:
        DataError: the file is gone, cannot be decoded, or (HDF5) its container lacks the image.
    """
    data = path.read_bytes() if is_hdf5_image(path) else None  # a missing image raises its own DataError
    try:
        with open_image(path, data) as image:
            if max_side is None:
                fast = decode_rgb_jpeg(path, image, orientation(image), data)
                return fast if fast is not None else _to_rgb(upright(image), path)
            stored = fit_side(*image.size, max_side)
            image.draft("RGB", stored)
            turned = orientation(image) in _SWAPPING_ORIENTATIONS
            array = _to_rgb(upright(image), path)
        target = (stored[1], stored[0]) if turned else stored
        if (array.shape[1], array.shape[0]) != target:
            array = np.asarray(Image.fromarray(array).resize(target, Image.BICUBIC, reducing_gap=3.0))
        return array
    except FileNotFoundError:
        raise DataError(f"image '{path}' disappeared after the data set was indexed; restore it.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise DataError(f"cannot decode image '{path}' ({error}); the file is corrupt or truncated: "
                        "re-download it or remove it from the ground-truth CSV.") from None


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) of an image (file or HDF5-stored) as it is seen upright (EXIF orientation applied), from its
    header."""
    with open_image(path) as image:
        width, height = image.size
        return (width, height) if orientation(image) in _SWAPPING_ORIENTATIONS else (height, width)
