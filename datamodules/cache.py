"""Preprocessing cache: resized copies of the original images, written once and reused every epoch.

Original ISIC images are up to 6000×4000 px; decoding them every epoch makes training input-bound.
The cache stores each image resized so that its longer side is at most ``max_side`` (aspect kept,
never enlarged) as a PNG (lossless with respect to the resized image), masks with nearest-neighbour.
A cache entry is keyed by the source's absolute path, size and modification time and by the
setting, so a changed source or a different ``max_side`` is never served stale. Writes are atomic
(temporary file + rename), so DataLoader workers can fill the cache concurrently on first use.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from datamodules.io import fit_side, image_size, load_rgb
from datamodules.masks import load_mask

FORMAT_VERSION = 2
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "dermlab"


def cache_root(directory: str | Path | None = None) -> Path:
    """The cache folder: ``directory``, else ``$DERMLAB_CACHE_DIR``, else ``~/.cache/dermlab``."""
    return Path(directory or os.environ.get("DERMLAB_CACHE_DIR") or DEFAULT_CACHE_DIR).expanduser()


def source_key(source: Path) -> str:
    """What identifies one version of a source file: its absolute path, size and modification time (ns)."""
    stat = source.stat()
    return f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"


class ImageCache:
    """Resized copies of images and masks under ``directory/max<max_side>/``."""

    def __init__(self, directory: str | Path | None, max_side: int):
        self.root = cache_root(directory) / f"max{max_side}"
        self.max_side = max_side

    def entry(self, source: Path, kind: str) -> Path:
        key = f"{source_key(source)}|{self.max_side}|{kind}|v{FORMAT_VERSION}"
        digest = hashlib.sha1(key.encode()).hexdigest()
        return self.root / digest[:2] / f"{digest}.png"

    def _write(self, path: Path, array: np.ndarray) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        os.close(handle)
        try:
            Image.fromarray(array).save(temporary, format="PNG", compress_level=1)
            os.replace(temporary, path)
        finally:
            if os.path.exists(temporary):
                os.remove(temporary)

    def image(self, source: Path) -> np.ndarray:
        """The resized RGB image, read from the cache or made and stored now."""
        path = self.entry(source, "rgb")
        if path.exists():
            return np.asarray(Image.open(path).convert("RGB"))
        array = load_rgb(source, max_side=self.max_side)
        self._write(path, array)
        return array

    def mask(self, source: Path, image: Path) -> np.ndarray:
        """The resized binary mask; on a miss it is checked against its original ``image``'s size."""
        path = self.entry(source, "mask")
        if path.exists():
            return np.asarray(Image.open(path))
        values = load_mask(source, image_size(image))  # the original's upright size, from its header
        target = fit_side(values.shape[1], values.shape[0], self.max_side)
        values = np.asarray(Image.fromarray(values).resize(target, Image.NEAREST))
        self._write(path, values)
        return values


def prepare_cache(dataset: str, root: str, max_side: int, cache_dir: str | None = None, workers: int = 4,
                  splits=("train", "val", "test")) -> dict[str, int]:
    """Write the cached copies of every image (and mask) of ``dataset``'s splits; returns images per split."""
    from concurrent.futures import ThreadPoolExecutor

    from datamodules import DATAMODULES

    cls, fixed = DATAMODULES[dataset]
    data = cls(root, cache_dir=cache_dir, max_side=max_side, num_workers=0, **fixed)
    counts = {}
    for split in splits:
        try:
            dataset_split = data.dataset(split)
        except FileNotFoundError:
            continue
        with ThreadPoolExecutor(workers) as pool:  # PIL releases the GIL while decoding and encoding
            list(pool.map(dataset_split._read, range(len(dataset_split))))
        counts[split] = len(dataset_split)
    return counts
