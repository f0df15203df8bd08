"""Where the suite caches what it derives from files, and how a file's version is recognised: the preprocessing
cache (:mod:`datamodules.cache`), the split audit's fingerprints (:mod:`datamodules.fingerprints`) and converted
packaged weights (:mod:`lightning_modules.nets.packaged_weights`) share the folder and the key.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_CACHE_DIR = Path.home() / ".cache" / "dermlab"


def cache_root(directory: str | Path | None = None) -> Path:
    """The cache folder: ``directory``, else ``$DERMLAB_CACHE_DIR``, else ``~/.cache/dermlab``."""
    return Path(directory or os.environ.get("DERMLAB_CACHE_DIR") or DEFAULT_CACHE_DIR).expanduser()


def source_key(source: Path) -> str:
    r"""What identifies one version of a source file: its absolute path, size and modification time (ns).

    A path whose name is not valid UTF-8 (a folder unpacked from an archive made on a Latin-1 system: Python holds
    its bytes as surrogates) is keyed by its bytes, ``\xe9`` escaped, so the key can be hashed and stored in SQLite.
    """
    stat = source.stat()
    path = os.fsencode(source.resolve()).decode("utf-8", "backslashreplace")
    return f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
