"""The one mask reader, threshold and writer: the datamodules, the mask writer callback and ``dermlab score --seg``
all read and write lesion / attribute masks here, so a pixel is lesion in training exactly when it is in scoring.

Rules (those of ``isic-challenge-scoring``'s ``load_image.load_segmentation_image`` and its task 1 / task 2
scorers, which binarise with ``> 128``):

* a pixel is lesion when its 8-bit value is greater than :data:`MASK_THRESHOLD` (128);
* a mask must be single-channel: PIL mode ``L`` (or 1-bit ``1``, read as 0/255); any other mode (RGB, RGBA,
  palette, 16-bit) is refused naming the file, as the official scorer refuses it;
* a mask with non-zero pixels but none above the threshold (``{0, 1}`` masks of re-shared ISIC copies, label maps
  ``{0, 1, 2}``) is refused naming the file and how to rescale it: read as the official scorer reads it, its
  lesion would silently vanish;
* the EXIF orientation is applied, as to images (:func:`dermlab.files.io.upright`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from dermlab.errors import DataError
from dermlab.files.io import unreadable, upright

MASK_THRESHOLD = 128  #: lesion where value > 128 (isic_challenge_scoring segmentation.py / task2.py)
SINGLE_CHANNEL_MODES = ("L", "1")
FIX_MODE = "convert it to 8-bit grayscale 0/255 (e.g. PIL: Image.open(p).convert('L').save(p))"
FIX_SCALE = ("rescale it to 0/255 (e.g. numpy/PIL: Image.fromarray((np.asarray(Image.open(p)) > 0).astype('uint8') "
             "* 255).save(p))")


def read_mask(path: Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """A mask file as a boolean (H, W) array, True where value > :data:`MASK_THRESHOLD`.

    Args:
        path: a PNG (or any single-channel image) mask.
        shape: the (height, width) of its image, checked when given.

    Raises:
        DataError: missing, empty (0 bytes), text or undecodable file, a mode other than ``L`` / ``1`` (not
            single-channel), a size other than ``shape``, or non-zero pixels none of which exceeds the threshold
            ({0, 1} masks).
    """
    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()
            image = upright(image)
            if image.mode == "1":
                image = image.convert("L")
            if image.mode not in SINGLE_CHANNEL_MODES:
                raise DataError(f"mask '{path}' is not single-channel (PIL mode {image.mode}); masks must be 8-bit "
                                f"grayscale, as the challenge scorer also requires: {FIX_MODE}.")
            values = np.asarray(image)
    except DataError:  # not single-channel: its own message
        raise
    except FileNotFoundError:
        raise DataError(f"mask '{path}' does not exist; every image of this task needs its mask.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise unreadable(path, error, what="mask", fix="re-download it") from None
    if shape is not None and values.shape != tuple(shape):
        raise DataError(f"mask '{path}' is {values.shape[1]}x{values.shape[0]} but its image is "
                        f"{shape[1]}x{shape[0]}; masks must have the image's size (re-download the matching pair).")
    binary = values > MASK_THRESHOLD
    peak = int(values.max()) if values.size else 0
    if peak and not binary.any():
        raise DataError(f"mask '{path}' holds values {sorted(map(int, np.unique(values)))[:6]} with none above "
                        f"{MASK_THRESHOLD}, so its lesion would read as background (a {{0, {peak}}} mask, as some "
                        f"re-shared ISIC copies have, instead of {{0, 255}}): {FIX_SCALE}.")
    return binary


def load_mask(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """:func:`read_mask` as uint8 0/255 of the image's (height, width), the form the datasets transform."""
    return read_mask(path, shape).astype(np.uint8) * 255


def write_mask(path: Path, binary: np.ndarray) -> Path:
    """Save a boolean (H, W) mask as an 8-bit grayscale 0/255 PNG, the challenge's submission format, which
    :func:`read_mask` reads back unchanged."""
    Image.fromarray(np.asarray(binary, dtype=bool).astype(np.uint8) * 255).save(path)
    return Path(path)
