"""Full-size JPEG decoding through OpenCV: the same pixels as Pillow, in about two thirds of the time.

Pillow and OpenCV both decode with libjpeg-turbo (same IDCT, same chroma upsampling), so a 3-channel JPEG
comes out identical, but Pillow holds RGB as 4 bytes a pixel and repacks it into the NumPy array, which is a
third of the time for a 6000×4000 image (226 vs 140 ms on the 2-core CPU, ``benchmarks/cache.py``).
Only a file that Pillow opens as an RGB JPEG and that ends with the end-of-image marker takes this path;
anything else (grayscale, CMYK, a truncated file, an OpenCV that refuses it) gives ``None`` and is left to
Pillow, whose errors name the file. The EXIF orientation is read by :func:`dermlab.files.io.orientation` and
applied here as Pillow's ``ImageOps.exif_transpose`` does.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

END_OF_IMAGE = b"\xff\xd9"
RGB_FLAG = getattr(cv2, "IMREAD_COLOR_RGB", None)  # OpenCV ≥ 4.10 converts to RGB itself

# EXIF orientation → what turns the stored pixels upright (Pillow's exif_transpose, on (H, W, C) arrays)
UPRIGHT: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    2: lambda a: a[:, ::-1],                        # mirrored left-right
    3: lambda a: a[::-1, ::-1],                     # upside down
    4: lambda a: a[::-1],                           # mirrored top-bottom
    5: lambda a: a.transpose(1, 0, 2),              # transposed
    6: lambda a: np.rot90(a, -1),                   # turned 90° counter-clockwise: turn it clockwise
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),  # transversed
    8: lambda a: np.rot90(a),                       # turned 90° clockwise: turn it counter-clockwise
}


def decode_rgb_jpeg(path: Path, image: Image.Image, turn: int, encoded: bytes | None = None) -> np.ndarray | None:
    """The upright (H, W, 3) uint8 pixels of the RGB JPEG at ``path``, decoded by OpenCV; ``None`` where Pillow
    should decode it instead.

    Args:
        path: the file.
        image: the same file opened by Pillow (header only: its format, mode and size are checked).
        turn: its EXIF orientation (1-8; 1 = upright).
        encoded: the JPEG's bytes when they are already in memory (an image stored in an HDF5 file,
            :mod:`dermlab.files.hdf5`); otherwise they are read from ``path``.
    """
    if image.format != "JPEG" or image.mode != "RGB":
        return None
    data = np.fromfile(path, np.uint8) if encoded is None else np.frombuffer(encoded, np.uint8)
    if data[-2:].tobytes() != END_OF_IMAGE:  # truncated (or trailing bytes): Pillow decides
        return None
    try:
        array = cv2.imdecode(data, cv2.IMREAD_IGNORE_ORIENTATION | (RGB_FLAG or cv2.IMREAD_COLOR))
    except cv2.error:
        return None
    if array is None or array.shape != (image.height, image.width, 3):
        return None
    if RGB_FLAG is None:
        array = cv2.cvtColor(array, cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(UPRIGHT[turn](array)) if turn in UPRIGHT else array
