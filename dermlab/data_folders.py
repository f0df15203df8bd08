"""Where each data set lives under a data root: the one table behind ``DATA_ROOT`` and ``--data-root``.

A data root is the parent folder that holds one sub-folder per data set, each as downloaded::

    DATA_ROOT/isic2016/  isic2017/  isic2018/  isic2019/  isic2020/  isic2024/  ham10000/  derm7pt/  vitiligo/

Every make target and ``dermlab grid run --data-root`` read a data set from ``DATA_ROOT/<folder>``, with the
folder named here; the three ISIC 2018 configs (``isic2018_task1``, ``_task2``, ``_task3``) share the one
``isic2018/`` download. The shipped sample (``isic_sample``) is not under a data root. The documentation's data-set
table lists the same names (a test checks it).
"""

from __future__ import annotations

from dataclasses import dataclass
from difflib import get_close_matches
from pathlib import Path

from dermlab.errors import DataError


@dataclass(frozen=True)
class DataSetFolder:
    """One data set's sub-folder of a data root and the page to download it from."""

    folder: str
    download: str


ISIC_ARCHIVE = "https://challenge.isic-archive.com/data/"

#: config name (``experiments/base/data/<name>.yaml``) -> its folder under a data root and its download page
FOLDERS: dict[str, DataSetFolder] = {
    "isic2016": DataSetFolder("isic2016", ISIC_ARCHIVE + "#2016"),
    "isic2017": DataSetFolder("isic2017", ISIC_ARCHIVE + "#2017"),
    "isic2018_task1": DataSetFolder("isic2018", ISIC_ARCHIVE + "#2018"),
    "isic2018_task2": DataSetFolder("isic2018", ISIC_ARCHIVE + "#2018"),
    "isic2018_task3": DataSetFolder("isic2018", ISIC_ARCHIVE + "#2018"),
    "isic2019": DataSetFolder("isic2019", ISIC_ARCHIVE + "#2019"),
    "isic2020": DataSetFolder("isic2020", ISIC_ARCHIVE + "#2020"),
    "isic2024": DataSetFolder("isic2024", "https://www.kaggle.com/competitions/isic-2024-challenge/data"),
    "ham10000": DataSetFolder("ham10000", "https://doi.org/10.7910/DVN/DBW86T"),
    "derm7pt": DataSetFolder("derm7pt", "https://derm.cs.sfu.ca"),
    "vitiligo": DataSetFolder("vitiligo", "the public vitiligo set of the dds paper (https://doi.org/10.48550/arXiv.2209.01527)"),
}


def data_set_folder(data_root: str | Path, name: str) -> Path:
    """``data_root/<folder of name>``, e.g. ``/data`` + ``isic2018_task3`` -> ``/data/isic2018``.

    Raises:
        DataError: ``name`` is not a data set that lives under a data root (the message lists those that do).
    """
    if name not in FOLDERS:
        raise DataError(f"data set {name!r} has no folder under a data root; the data sets that do: "
                        f"{', '.join(FOLDERS)}.")
    return Path(data_root) / FOLDERS[name].folder


def require_data_set_folder(data_root: str | Path, name: str) -> Path:
    """:func:`data_set_folder`, which must exist: a missing one stops here, before anything trains.

    Raises:
        DataError: the folder is missing; the message names the folder expected and the download page.
    """
    folder = data_set_folder(data_root, name)
    if not Path(data_root).is_dir():
        raise DataError(f"data root '{data_root}' does not exist. DATA_ROOT (--data-root) is the folder that holds "
                        f"one sub-folder per data set, e.g. '{folder}'.")
    if not folder.is_dir():
        present = sorted(p.name for p in Path(data_root).iterdir() if p.is_dir())
        known = {entry.folder for entry in FOLDERS.values()}
        said = (f"{name}: expected the data set's folder '{folder}' (DATA_ROOT holds one sub-folder per data set, "
                f"named as in the data-set table of docs/datasets/index.md); it does not exist (sub-folders there: "
                f"{', '.join(present) or 'none'}).")
        close = get_close_matches(FOLDERS[name].folder, present, n=1, cutoff=0.75) or [
            p for p in present if p.lower() == FOLDERS[name].folder]
        if close:
            raise DataError(f"{said} Did you mean '{close[0]}'? Rename it to {FOLDERS[name].folder}, or link it: "
                            f"ln -s {Path(data_root) / close[0]} {folder}")
        if present and not known & set(present):
            raise DataError(f"{said} '{data_root}' holds no data-set folder at all: if it is a data set's own folder, "
                            f"give its parent as the data root (DATA_ROOT={Path(data_root).parent}, with the folder "
                            f"named {FOLDERS[name].folder}).")
        raise DataError(f"{said} Download it from {FOLDERS[name].download} and unpack it there as downloaded, or "
                        f"link your copy: ln -s /path/to/your/copy {folder}")
    return folder
