"""Preprocessing cache: resized copies of the original images, written once and reused every epoch.

Original ISIC images are up to 6000×4000 px; decoding them every epoch makes training input-bound.
The cache stores each image resized so that its longer side is at most ``max_side`` (aspect kept,
never enlarged; JPEGs decoded at reduced scale, see :func:`dermlab.files.io.load_rgb`), masks with
nearest-neighbour, as the uint8 array itself:

* ``npy`` (default): the raw (H, W, 3) / (H, W) uint8 array, read back with one ``np.load`` (~0.1 ms for
  512 px) — no decoding at all; 512×384×3 B = 0.59 MB an image;
* ``png``: the same pixels losslessly compressed (about half the disk), but decoding it costs ~8 ms a
  512 px image, several times the augmentation itself.

Either way the pixels served are exactly those :func:`~dermlab.files.io.load_rgb` gives with ``max_side``.
An entry is keyed by the source's absolute path, size and modification time, by ``max_side``, the
format and :data:`FORMAT_VERSION`, so a changed source, a different setting or an entry of an older
layout is never served. Entries live under ``<cache_dir>/max<max_side>/v<FORMAT_VERSION>/``; older
layouts' files (``<cache_dir>/max<max_side>/<2 hex digits>/*.png``) are ignored and may be deleted.
Writes are atomic (temporary file + rename), so DataLoader workers can fill the cache concurrently.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from PIL import Image

from dermlab.files.cache_keys import cache_root, source_key
from dermlab.files.io import fit_side, image_size, load_rgb
from dermlab.files.masks import load_mask

if TYPE_CHECKING:
    from datamodules.datasets.table import ImageTable

log = logging.getLogger(__name__)

#: The cache layout (3 = raw uint8 arrays, .npy by default, under max<side>/v3/; 2 = PNG under max<side>/).
FORMAT_VERSION = 3
#: How a cache entry is stored (``npy`` or ``png``, see above).
CacheFormat = Literal["npy", "png"]
FORMATS: tuple[str, ...] = ("npy", "png")


def encode(array: np.ndarray, format: CacheFormat) -> bytes:
    """The bytes of a cache entry holding the uint8 ``array`` (H, W, 3) or (H, W) in ``format``."""
    buffer = io.BytesIO()
    if format == "npy":
        np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    else:
        Image.fromarray(array).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def decode(path: Path, format: CacheFormat, ndim: int) -> np.ndarray:
    """The uint8 array of ``ndim`` dimensions (3: an RGB image, 2: a mask) stored at ``path`` in ``format``.

    Raises:
        FileNotFoundError: there is no entry.
        ValueError, OSError, EOFError: the entry is damaged or holds something else.
    """
    if format == "npy":
        array = np.load(path, allow_pickle=False)
    else:
        with Image.open(path) as image:
            array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != ndim or (ndim == 3 and array.shape[2] != 3):
        raise ValueError(f"it holds {array.dtype} {array.shape}, not a uint8 {'image' if ndim == 3 else 'mask'}")
    return array


class ImageCache:
    """Resized copies of images and masks under ``directory/max<max_side>/v<FORMAT_VERSION>/``.

    Args:
        directory: the cache folder (see :func:`dermlab.files.cache_keys.cache_root`).
        max_side: longer side of the stored copies, in pixels.
        format: ``npy`` (raw arrays, fastest to read) or ``png`` (about half the disk, ~8 ms more a read).

    Raises:
        ValueError: an unknown ``format`` or a ``max_side`` below 1.
    """

    def __init__(self, directory: str | Path | None, max_side: int, format: CacheFormat = "npy"):
        if format not in FORMATS:
            raise ValueError(f"cache format must be one of {', '.join(FORMATS)}, got {format!r}")
        if max_side < 1:
            raise ValueError(f"max_side must be at least 1 pixel, got {max_side}")
        self.root = cache_root(directory) / f"max{max_side}" / f"v{FORMAT_VERSION}"
        self.max_side, self.format = max_side, format

    def entry(self, source: Path, kind: str) -> Path:
        """Where the ``kind`` (``rgb`` or ``mask``) copy of this version of ``source`` is stored."""
        key = f"{source_key(source)}|{self.max_side}|{kind}|{self.format}|v{FORMAT_VERSION}"
        digest = hashlib.sha1(key.encode()).hexdigest()
        return self.root / digest[:2] / f"{digest}.{self.format}"

    def _write(self, path: Path, array: np.ndarray) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(encode(array, self.format))
            os.replace(temporary, path)
        finally:
            if os.path.exists(temporary):
                os.remove(temporary)

    def _read(self, path: Path, ndim: int) -> np.ndarray | None:
        """The stored array, or ``None`` when there is none or it is damaged (then it is made anew)."""
        try:
            return decode(path, self.format, ndim)
        except FileNotFoundError:
            return None
        except (ValueError, OSError, EOFError) as error:
            log.warning("remaking damaged cache entry '%s' (%s)", path, error)
            return None

    def image(self, source: Path) -> np.ndarray:
        """The resized upright RGB image (H, W, 3) uint8, read from the cache or made and stored now."""
        path = self.entry(source, "rgb")
        array = self._read(path, ndim=3)
        if array is not None:
            return array
        array = load_rgb(source, max_side=self.max_side)
        self._write(path, array)
        return array

    def mask(self, source: Path, image: Path) -> np.ndarray:
        """The resized mask (H, W) uint8 0/255; on a miss it is checked against its original ``image``'s size."""
        path = self.entry(source, "mask")
        values = self._read(path, ndim=2)
        if values is not None:
            return values
        values = load_mask(source, image_size(image))  # the original's upright size, from its header
        target = fit_side(values.shape[1], values.shape[0], self.max_side)
        values = np.asarray(Image.fromarray(values).resize(target, Image.NEAREST))
        self._write(path, values)
        return values


def prepare_cache(dataset: str, root: str, max_side: int, cache_dir: str | None = None, workers: int = 4,
                  splits: Iterable[str] = ("train", "val", "test"), format: CacheFormat = "npy") -> dict[str, int]:
    """Write the cached copies of every image (and mask) of ``dataset``'s splits; returns images per split."""
    from concurrent.futures import ThreadPoolExecutor

    from datamodules.datasets import READERS  # here, not on import: the readers' images use this module's cache

    cls, fixed = READERS[dataset]
    reader, cache = cls(root, **fixed), ImageCache(cache_dir, max_side, format)
    counts = {}
    for split in splits:
        if split == "train" and getattr(reader, "scheme", None) == "external":
            continue  # an evaluation set (DDI): every image is a test image, none trains
        try:
            table = reader.table(split)
        except FileNotFoundError:
            continue

        def fill(index: int, table: ImageTable = table) -> None:
            cache.image(table.paths[index])
            for mask in table.masks[index] if table.masks is not None else ():
                cache.mask(mask, table.paths[index])

        with ThreadPoolExecutor(workers) as pool:  # PIL releases the GIL while decoding and encoding
            list(pool.map(fill, range(len(table))))
        counts[split] = len(table)
    return counts
