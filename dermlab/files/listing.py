"""The one folder lister every data set and command uses to find image (and mask) files on disk.

Copies people actually hold are not pristine: a macOS zip adds ``._name.jpg`` AppleDouble files and a
``__MACOSX/`` folder, Finder adds ``.DS_Store``, the ISIC archive's download tool wrote ``.JPG`` until 2024 and
phone exports give ``.jpeg`` / ``.webp``. :func:`list_images` returns the images of one folder, whatever the
case of their extension, leaves hidden files (any name starting with ``.``) and ``__MACOSX`` out, and says
what it skipped in one log line (a warning when a skipped file looks like an image of an unsupported type).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from PIL import Image

log = logging.getLogger(__name__)

#: The accepted image types, matched without regard to case (what PIL decodes natively and photos come as).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".jfif", ".png", ".webp", ".bmp", ".tif", ".tiff")
MAC_FOLDER = "__MACOSX"
# Image types PIL or cameras produce that are not accepted: skipping one is a warning, not an info line.
_UNSUPPORTED_IMAGES = {".heic", ".heif", ".dng", ".raw", ".cr2", ".nef", ".arw"}


def is_hidden(path: Path) -> bool:
    """True for dot-files (``._x.jpg`` AppleDouble, ``.DS_Store``) and anything inside a ``__MACOSX`` folder."""
    return path.name.startswith(".") or MAC_FOLDER in path.parts


def is_image_name(path: Path) -> bool:
    """True when ``path`` has an accepted image extension (any case) and is not hidden."""
    return path.suffix.lower() in IMAGE_SUFFIXES and not is_hidden(path)


def _looks_like_image(suffix: str) -> bool:
    return suffix in _UNSUPPORTED_IMAGES or (suffix in Image.registered_extensions()
                                             and Image.registered_extensions()[suffix] in Image.OPEN)


def list_images(folder: Path, keep: Callable[[Path], bool] | None = None) -> list[Path]:
    """The image files directly in ``folder``, sorted by name; ``[]`` when it does not exist.

    Args:
        folder: the folder to list (not recursive; sub-folders are not entered).
        keep: optional filter on the accepted images (e.g. a file-name pattern); files it rejects are not
            counted as skipped, they are simply some other data set's files.

    Hidden files, ``__MACOSX`` and files of other types are skipped and counted in one log line per folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    images, hidden, macos, others = [], 0, 0, Counter()
    for path in folder.iterdir():
        if path.is_dir():
            macos += path.name == MAC_FOLDER
        elif is_hidden(path):
            hidden += 1
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            if keep is None or keep(path):
                images.append(path)
        else:
            others[path.suffix.lower() or "(none)"] += 1
    if hidden or macos or others:
        parts = [f"{hidden} hidden file(s) (._* AppleDouble, .DS_Store)"] if hidden else []
        parts += [f"a {MAC_FOLDER} folder"] if macos else []
        if others:
            kinds = ", ".join(f"{suffix} ×{n}" for suffix, n in sorted(others.items()))
            parts.append(f"{sum(others.values())} file(s) of other types ({kinds}; images must be "
                         f"{'/'.join(IMAGE_SUFFIXES)})")
        level = logging.WARNING if any(_looks_like_image(s) for s in others) else logging.INFO
        log.log(level, "'%s': listed %d image(s), skipped %s", folder, len(images), "; ".join(parts))
    return sorted(images, key=lambda p: p.name)


def images_by_stem(folder: Path, keep: Callable[[Path], bool] | None = None) -> dict[str, Path]:
    """The images of ``folder`` keyed by file name without extension (``ISIC_0000000.JPG`` → ``ISIC_0000000``);
    where two share a stem the one whose extension comes first in :data:`IMAGE_SUFFIXES` wins."""
    found: dict[str, Path] = {}
    order = {s: i for i, s in enumerate(IMAGE_SUFFIXES)}
    for path in sorted(list_images(folder, keep), key=lambda p: order[p.suffix.lower()]):
        found.setdefault(path.stem, path)
    return found
