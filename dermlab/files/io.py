"""Checked readers for the images (and, from :mod:`dermlab.files.tables`, the CSVs): every failure names the file
and the fix."""

from __future__ import annotations

import hashlib
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
from dermlab.files.tables import read_table  # noqa: F401 (the table reader, re-exported for the readers)

log = logging.getLogger(__name__)


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, hex (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def require_dir(path: Path, what: str, hint: str) -> Path:
    """Return ``path`` if it is a directory, else stop with a message saying what belongs there."""
    if not path.exists():
        raise DataError(f"{what} '{path}' does not exist. {hint}")
    if not path.is_dir():
        raise DataError(f"{what} '{path}' is not a directory. {hint}")
    return path


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
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_FIX_DEPTH = "convert it to 8-bit RGB (e.g. PIL: Image.fromarray(pixels_scaled_to_uint8).save(p)) or remove it"


def _to_rgb(image: Image.Image, path: Path) -> np.ndarray:
    """RGB uint8 (H, W, 3) from any PIL mode, said once per mode: grayscale (``L``, ``LA``, 1-bit), RGBA,
    palette, CMYK, LAB and 16-bit grayscale (scaled by 255/65535, or taken as 8-bit when no value exceeds 255).

    Raises:
        DataError: pixels with no agreed 8-bit scale, named with the file: 32-bit floating point (``F``) or 32-bit
            integers above 65535.
    """
    if image.mode == "RGB":
        return np.asarray(image)
    if image.mode == "F":
        raise DataError(f"image '{path}' holds 32-bit floating-point pixels (PIL mode F), which have no agreed 8-bit "
                        f"scale; {_FIX_DEPTH}.")
    if image.mode not in _CONVERTED_MODES:
        _CONVERTED_MODES.add(image.mode)
        log.warning("converting %s images to 8-bit RGB (first: '%s'); alpha is dropped, 16-bit is scaled", image.mode,
                    path)
    if image.mode in _SIXTEEN_BIT_MODES:
        values = np.asarray(image, dtype=np.float64)
        top = float(values.max()) if values.size else 0.0
        if top > 65535 or (values.size and values.min() < 0):
            raise DataError(f"image '{path}' holds 32-bit values from {values.min():.0f} to {top:.0f}, outside the "
                            f"16-bit range; {_FIX_DEPTH}.")
        peak = 65535.0 if image.mode != "I" or top > 255 else 255.0
        gray = np.clip(values / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    return np.asarray(image.convert("RGB"))


def rgb_array(image: Image.Image | np.ndarray, name: str) -> np.ndarray:
    """RGB uint8 (H, W, 3) of an image already in memory, converted as a file of that kind would be
    (:func:`load_rgb`): a PIL image in any mode, or an array (H, W) grayscale, (H, W, 1), (H, W, 3) RGB or
    (H, W, 4) RGBA, 8- or 16-bit.

    Raises:
        DataError: another shape, or pixels with no agreed 8-bit scale (floating point), naming ``name``.
    """
    if isinstance(image, np.ndarray):
        if image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8:
            return image
        if image.ndim == 3 and image.shape[2] == 1:
            image = image[..., 0]
        if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
            raise DataError(f"{name}: an image array must be (H, W) grayscale, (H, W, 3) RGB or (H, W, 4) RGBA, got "
                            f"shape {image.shape}")
        if image.dtype.kind == "f":
            raise DataError(f"{name}: a {image.dtype} array has no agreed 8-bit scale; give uint8 (0–255) or uint16 "
                            "pixels")
        try:
            image = Image.fromarray(image)
        except TypeError:
            raise DataError(f"{name}: an array of {image.dtype} {image.shape} is not an image PIL can read; give uint8 "
                            "RGB") from None
    return _to_rgb(image, Path(name))


def _first_bytes(path: Path, data: bytes | None) -> bytes | None:
    """The first 64 bytes of the image (``data`` when given), or None when the file cannot be read."""
    if data is not None:
        return data[:64]
    try:
        with open(path, "rb") as file:
            return file.read(64)
    except OSError:
        return None


#: What to do about an unreadable image of a data set, and about one a user gave on its own (``dermlab classify``).
DATA_SET_FIX = "re-download it or remove it from the ground-truth CSV"
UNLISTED_FIX = "re-copy it, or convert it to a PNG or JPEG another program can open"


def unreadable(path: Path, error: Exception, what: str = "image", data: bytes | None = None,
               fix: str = DATA_SET_FIX) -> DataError:
    """The error for a file that Pillow cannot open or decode, naming it and saying what it holds instead.

    Args:
        path: the file (or HDF5-stored image).
        error: what Pillow raised.
        what: ``image`` or ``mask``, as the message calls the file.
        data: the file's bytes when they are already in memory.
        fix: what the user should do.

    Returns:
        A :class:`~dermlab.errors.DataError`: an empty (0-byte) file, a text file (an HTML / XML / JSON web page or
        error message saved under the image's name), or else a corrupt or truncated image, with Pillow's reason.
    """
    head = _first_bytes(path, data)
    if head == b"":
        return DataError(f"{what} '{path}' is empty (0 bytes), as after a download or copy that stopped before "
                         f"writing it; {fix}.")
    if head and head.lstrip()[:1] in (b"<", b"{"):  # HTML, XML (a storage service's AccessDenied) or JSON
        begins = head.lstrip()[:24].decode("ascii", "replace")
        return DataError(f"{what} '{path}' holds text, not an image (it begins {begins!r}): a web page or error "
                         f"message was saved under its name; {fix}.")
    return DataError(f"cannot decode {what} '{path}' ({error}); the file is corrupt or truncated: {fix}.")


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


def load_rgb(path: Path, max_side: int | None = None, *, listed: bool = True) -> np.ndarray:
    """Decode an image to an upright (EXIF orientation applied) RGB uint8 array (H, W, 3); a truncated or
    unreadable file names itself.

    ``path`` is a file or an image stored in an HDF5 file (:class:`dermlab.files.hdf5.HDF5Image`, ISIC 2024), whose
    bytes go through the same decoders as a file's. Without ``max_side``, RGB JPEGs are decoded by OpenCV
    (:mod:`dermlab.files.jpeg`: the same pixels, 1.35–1.4× faster on ISIC sizes); other images by Pillow. With
    ``max_side`` the image comes back resized so its longer side is at most that; JPEGs are then decoded at reduced
    scale directly (``draft``), which makes the cache fast to fill. ``listed=False`` is for an image a user gave
    on its own (``dermlab classify``), not from a data set's list: the messages then do not send them to a CSV.

    Raises:
        DataError: the file is gone, empty (0 bytes), text (a web page saved under its name: :func:`unreadable`),
            cannot be decoded, holds pixels with no 8-bit scale (32-bit float), or (HDF5) its container lacks the
            image.
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
    except DataError:  # pixels with no 8-bit scale (_to_rgb): its own message
        raise
    except FileNotFoundError:
        gone = "disappeared after the data set was indexed; restore it" if listed else "does not exist (a broken link?)"
        raise DataError(f"image '{path}' {gone}.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise unreadable(path, error, data=data, fix=UNLISTED_FIX if not listed else DATA_SET_FIX) from None


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) of an image (file or HDF5-stored) as it is seen upright (EXIF orientation applied), from its
    header.

    Raises:
        DataError: the file is gone or is not an image (as :func:`load_rgb` says it).
    """
    try:
        with open_image(path) as image:
            width, height = image.size
            return (width, height) if orientation(image) in _SWAPPING_ORIENTATIONS else (height, width)
    except FileNotFoundError:
        raise DataError(f"image '{path}' does not exist; restore it or remove it from the ground-truth CSV.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise unreadable(path, error) from None
