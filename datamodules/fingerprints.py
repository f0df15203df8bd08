"""Image fingerprints for the split audit, kept beside the preprocessing cache.

* **exact**: BLAKE2b (128 bit) of the decoded 8-bit RGB pixels and the image's shape. Two files with the
  same pixels have the same fingerprint whatever their names, containers or metadata (a renamed copy, a
  lossless PNG of a JPEG's decoded pixels); one changed pixel changes it.
* **perceptual**: the 64-bit DCT hash (pHash) of the ``imagehash`` library, for near duplicates: the same
  lesion photographed again, or a resized / re-compressed copy. Two images are near duplicates when the
  Hamming distance of their hashes is small (:data:`NEAR_DUPLICATE_BITS`).

Entries are keyed like the cache's resized copies (the source's absolute path, size and modification time:
:func:`dermlab.files.cache_keys.source_key`), in one SQLite file ``<cache_dir>/fingerprints.sqlite3``, so a changed
file is hashed again and a second set-up decodes nothing. Files that are missing or cannot be decoded get
no fingerprint (``None``); the datamodule's ``on_bad_image`` deals with them.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from dermlab.errors import DataError
from dermlab.files.cache_keys import cache_root, source_key
from dermlab.files.io import load_rgb
from dermlab.runtime.resources import available_cores

NEAR_DUPLICATE_BITS = 6  #: pHash distance (of 64 bits) at or below which two images count as near duplicates
KINDS = ("exact", "phash")


def exact_fingerprint(path: Path) -> str:
    """BLAKE2b-128 hex digest of the decoded RGB pixels (and their shape) of ``path``."""
    pixels = load_rgb(path)
    digest = hashlib.blake2b(digest_size=16)
    digest.update(str(pixels.shape).encode())
    digest.update(pixels.tobytes())
    return digest.hexdigest()


def perceptual_fingerprint(path: Path) -> str:
    """The 64-bit pHash (``imagehash.phash``) of ``path`` as 16 hex digits, of the pixels the suite trains on
    (:func:`~dermlab.files.io.load_rgb`: EXIF orientation applied, 16-bit scaled, CMYK / palette converted).

    Raises:
        DataError: the file is gone or cannot be decoded (named).
    """
    import imagehash
    from PIL import Image

    return str(imagehash.phash(Image.fromarray(load_rgb(path))))


COMPUTE: dict[str, Callable[[Path], str]] = {"exact": exact_fingerprint, "phash": perceptual_fingerprint}


class FingerprintStore:
    """Fingerprints of image files, computed once per file version and kept in ``<cache_dir>/fingerprints.sqlite3``.

    Args:
        directory: the preprocessing cache folder (default ``$DERMLAB_CACHE_DIR`` or ``~/.cache/dermlab``).
        workers: decoding threads (PIL releases the GIL while decoding); default: the CPUs this process may use.
    """

    def __init__(self, directory: str | Path | None = None, workers: int | None = None):
        self.path = cache_root(directory) / "fingerprints.sqlite3"
        self.workers = workers or available_cores()

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=60)  # several DDP ranks may set up at once
        connection.execute("CREATE TABLE IF NOT EXISTS fingerprints (key TEXT PRIMARY KEY, exact TEXT, phash TEXT)")
        return connection

    def get(self, paths: Sequence[Path], kind: str = "exact") -> list[str | None]:
        """One fingerprint per path (``None`` for a missing or undecodable file), computing only unknown ones."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        keys = [source_key(p) if p.is_file() else None for p in paths]
        known: dict[str, str] = {}
        with self._connect() as connection:
            wanted = sorted({k for k in keys if k is not None})
            for start in range(0, len(wanted), 900):  # SQLite's limit on bound parameters
                chunk = wanted[start:start + 900]
                rows = connection.execute(f"SELECT key, {kind} FROM fingerprints WHERE {kind} IS NOT NULL AND key IN "
                                          f"({','.join('?' * len(chunk))})", chunk)
                known.update(rows.fetchall())
            todo = [i for i, k in enumerate(keys) if k is not None and k not in known]
            if todo:
                with ThreadPoolExecutor(self.workers) as pool:
                    values = list(pool.map(lambda i: _or_none(COMPUTE[kind], paths[i]), todo))
                fresh = [(keys[i], v) for i, v in zip(todo, values, strict=True) if v is not None]
                connection.executemany(f"INSERT INTO fingerprints (key, {kind}) VALUES (?, ?) ON CONFLICT(key) "
                                       f"DO UPDATE SET {kind} = excluded.{kind}", fresh)
                known.update(fresh)
        return [known.get(k) if k is not None else None for k in keys]


def _or_none(compute: Callable[[Path], str], path: Path) -> str | None:
    try:
        return compute(path)
    except DataError:
        return None
