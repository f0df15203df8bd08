"""Images stored as encoded bytes inside an HDF5 file, addressed like files (ISIC 2024: ``train-image.hdf5``).

The ISIC 2024 challenge (SLICE-3D, Kaggle "ISIC 2024 - Skin Cancer Detection with 3D-TBP") ships its images as one
HDF5 file per split: every image is a scalar dataset named by its ``isic_id`` that holds the JPEG file's bytes. An
image there is an :class:`HDF5Image`: the path ``<file>/<isic_id>`` (``train-image.hdf5/ISIC_0015670``), a
:class:`pathlib.Path` whose ``is_file()``, ``exists()``, ``stat()`` and ``read_bytes()`` answer for the stored image.
So an :class:`~datamodules.datasets.table.ImageTable` lists it like a file, the bad-image screening and the split
audit find a missing one by ``is_file()``, the preprocessing cache and the fingerprints key it by the container's
size and modification time plus its path, and the one image reader (:func:`dermlab.files.io.load_rgb`) decodes
its bytes with the same decoders as a JPEG file's (EXIF orientation, colour handling and pixels identical).

**One handle per process.** An HDF5 handle must not be shared by processes: a DataLoader worker forked after the
main process opened the file would read through the parent's library state. Handles are therefore kept per process
id (:func:`handle`): the first read in a process (a worker, the main process) opens the file read-only for that
process, later reads reuse it, and a worker never touches a handle it inherited. A handle is reopened when the
file's size or modification time changed.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from typing_extensions import override

from dermlab.errors import DataError

if TYPE_CHECKING:
    import h5py

_lock = threading.Lock()
# (process id, container path) -> (signature of the file when opened, h5py.File, its member names or None)
_open: dict[tuple[int, str], list] = {}


def _signature(container: Path) -> tuple[int, int, int]:
    stat = container.stat()
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def _entry(container: Path) -> list:
    """This process's ``[signature, h5py.File, names]`` of ``container``, opened on first use."""
    import h5py  # imported here: reading other data sets does not need it

    container = Path(container)
    try:
        signature = _signature(container)
    except FileNotFoundError:
        raise DataError(f"HDF5 image file '{container}' does not exist; download it (ISIC 2024: the Kaggle "
                        "competition's data) or write a synthetic copy with `dermlab synth`.") from None
    except OSError as error:
        raise DataError(f"cannot read HDF5 image file '{container}' ({error}).") from None
    key = (os.getpid(), str(container))
    with _lock:
        entry = _open.get(key)
        if entry is not None and entry[0] != signature:  # the file was replaced or changed: read the new one
            entry[1].close()
            entry = None
        if entry is None:
            try:
                entry = [signature, h5py.File(container, "r"), None]
            except OSError as error:
                raise DataError(f"cannot open '{container}' as an HDF5 file ({error}); the download is incomplete "
                                "or damaged: download it again.") from None
            _open[key] = entry
        return entry


def handle(container: Path) -> h5py.File:
    """The read-only ``h5py.File`` of ``container`` for the calling process (opened on its first call there).

    Raises:
        DataError: the file is missing or is not an HDF5 file.
    """
    return _entry(container)[1]


def opened_here() -> list[str]:
    """The containers the calling process holds its own handle on (what the tests check in DataLoader workers)."""
    pid = os.getpid()
    return sorted(path for owner, path in _open if owner == pid)


def members(container: Path) -> frozenset[str]:
    """The names of the datasets at the top level of ``container`` (the image ids), read once per process."""
    entry = _entry(container)
    if entry[2] is None:
        with _lock:
            entry[2] = frozenset(entry[1].keys())
    return entry[2]


def read_member(container: Path, name: str) -> bytes:
    """The bytes stored under ``name`` in ``container``: a scalar byte string (the ISIC 2024 layout; read through
    h5py's low-level dataset API, about 4× faster than ``file[name][()]``), opaque bytes or a 1-D uint8 array.

    Raises:
        DataError: the file is missing or damaged, has no dataset ``name``, or holds something else there.
    """
    from h5py import h5d, h5s

    file = handle(container)
    try:
        dataset = h5d.open(file.id, name.encode())
        if dataset.shape == () and dataset.dtype.kind == "S":
            buffer = np.empty((), dataset.dtype)
            dataset.read(h5s.ALL, h5s.ALL, buffer)
            return bytes(buffer[()])  # as file[name][()]: a fixed-length string ends at its first trailing NUL
        value = file[name][()]
    except KeyError:
        raise DataError(f"'{container}' holds no image '{name}' (its metadata CSV lists it); download the file "
                        "again, remove the row, or set on_bad_image: skip.") from None
    except OSError as error:
        raise DataError(f"cannot read image '{name}' from '{container}' ({error}); the file is damaged: download "
                        "it again.") from None
    if isinstance(value, bytes | np.bytes_):
        return bytes(value)
    if isinstance(value, np.void):
        return value.tobytes()
    if isinstance(value, np.ndarray) and value.dtype == np.uint8 and value.ndim == 1:
        return value.tobytes()
    raise DataError(f"'{container}' dataset '{name}' holds {getattr(value, 'dtype', type(value).__name__)} "
                    f"{getattr(value, 'shape', '')}, not an encoded image's bytes.")


class HDF5Image(type(Path())):
    """The image stored under ``key`` in the HDF5 file ``container``: ``HDF5Image(container, key)`` is the path
    ``<container>/<key>``; ``parent`` is the container (a plain Path) and ``name`` the key.

    ``is_file()`` / ``exists()``: the container holds the key; ``stat()``: the container's (size, modification
    time); ``read_bytes()``: the stored bytes (:func:`read_member`).
    """

    @property
    def container(self) -> Path:
        """The HDF5 file holding the image, as a plain :class:`~pathlib.Path`."""
        return Path(os.path.dirname(self))

    @property
    @override
    def parent(self) -> Path:
        return self.container

    @property
    def key(self) -> str:
        """The image's dataset name inside the container, which for ISIC 2024 is its ``isic_id``."""
        return self.name

    @override
    def is_file(self, **_: bool) -> bool:  # **_: Path's follow_symlinks (Python 3.13); the container is followed
        try:
            return self.key in members(self.container)
        except DataError:
            return False

    @override
    def exists(self, **_: bool) -> bool:
        return self.is_file()

    @override
    def is_dir(self, **_: bool) -> bool:
        return False

    @override
    def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
        return self.container.stat()

    @override
    def read_bytes(self) -> bytes:
        return read_member(self.container, self.key)


def is_hdf5_image(path: Path) -> bool:
    """Whether ``path`` addresses an image inside an HDF5 file (an :class:`HDF5Image`)."""
    return isinstance(path, HDF5Image)
