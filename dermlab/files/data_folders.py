"""Where each data set lives under a data root: the one table behind ``DATA_ROOT`` and ``--data-root``.

A data root is the parent folder that holds one sub-folder per data set, each as downloaded::

    DATA_ROOT/isic2016/  isic2017/  isic2018/  isic2019/  isic2020/  isic2024/  ham10000/  derm7pt/  vitiligo/
              ddi/  fitzpatrick17k/  pad_ufes20/

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
    "pad_ufes20": DataSetFolder("pad_ufes20", "https://data.mendeley.com/datasets/zr7vgbcyr2/1"),
    "ddi": DataSetFolder("ddi", "https://stanfordaimi.azurewebsites.net/datasets/35866158-8196-48d8-87bf-50dca81df965"),
    "fitzpatrick17k": DataSetFolder("fitzpatrick17k", "https://github.com/mattgroh/fitzpatrick17k"),
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


@dataclass(frozen=True)
class OfficialFiles:
    """What a data set's download holds at its top: a title for messages and the official files and folders whose
    presence marks it (any one suffices; a ``.csv`` also counts as its Dataverse ``.tab`` form)."""

    title: str
    files: tuple[str, ...]


#: config name -> the official files its datamodule reads (the names of the ground truth, image and mask folders)
OFFICIAL_FILES: dict[str, OfficialFiles] = {
    "isic2016": OfficialFiles("ISIC 2016 (Part 3)", (
        "ISBI2016_ISIC_Part3_Training_GroundTruth.csv", "ISBI2016_ISIC_Part3_Test_GroundTruth.csv",
        "ISBI2016_ISIC_Part3_Training_Data/", "ISBI2016_ISIC_Part3_Test_Data/")),
    "isic2017": OfficialFiles("ISIC 2017 (Part 3)", (
        "ISIC-2017_Training_Part3_GroundTruth.csv", "ISIC-2017_Validation_Part3_GroundTruth.csv",
        "ISIC-2017_Test_v2_Part3_GroundTruth.csv", "ISIC-2017_Training_Data/")),
    "isic2018_task1": OfficialFiles("ISIC 2018 Task 1", (
        "ISIC2018_Task1_Training_GroundTruth/", "ISIC2018_Task1_Validation_GroundTruth/",
        "ISIC2018_Task1_Test_GroundTruth/")),
    "isic2018_task2": OfficialFiles("ISIC 2018 Task 2", (
        "ISIC2018_Task2_Training_GroundTruth_v3/", "ISIC2018_Task2_Training_GroundTruth/",
        "ISIC2018_Task2_Validation_GroundTruth/", "ISIC2018_Task2_Test_GroundTruth/")),
    "isic2018_task3": OfficialFiles("ISIC 2018 Task 3", (
        "ISIC2018_Task3_Training_GroundTruth.csv", "ISIC2018_Task3_Validation_GroundTruth.csv",
        "ISIC2018_Task3_Test_GroundTruth.csv", "ISIC2018_Task3_Training_Input/")),
    "isic2019": OfficialFiles("ISIC 2019", (
        "ISIC_2019_Training_GroundTruth.csv", "ISIC_2019_Training_Metadata.csv", "ISIC_2019_Training_Input/")),
    "isic2020": OfficialFiles("ISIC 2020", (
        "ISIC_2020_Training_GroundTruth.csv", "ISIC_2020_Training_GroundTruth_v2.csv",
        "ISIC_2020_Training_Duplicates.csv")),
    "isic2024": OfficialFiles("ISIC 2024 (SLICE-3D)", (
        "train-metadata.csv", "train-image.hdf5", "test-metadata.csv", "test-image.hdf5")),
    "ham10000": OfficialFiles("HAM10000", (
        "HAM10000_metadata.csv", "HAM10000_images_part_1/", "HAM10000_images_part_2/")),
    "derm7pt": OfficialFiles("Derm7pt (release_v0)", (
        "release_v0/meta/meta.csv", "meta/meta.csv", "meta/train_indexes.csv")),
    "vitiligo": OfficialFiles("Vitiligo (class folders)", ("train/Yes/", "train/No/")),
    "pad_ufes20": OfficialFiles("PAD-UFES-20", ("metadata.csv", "images/imgs_part_1/", "imgs_part_1/")),
    "ddi": OfficialFiles("DDI (Diverse Dermatology Images)", ("ddi_metadata.csv",)),
    "fitzpatrick17k": OfficialFiles("Fitzpatrick17k", ("fitzpatrick17k.csv",)),
}
SUB_FOLDERS_LOOKED_AT = 64  #: sub-folders of a folder whose own files :func:`recognise` looks at


def _holds(folder: Path, name: str) -> str | None:
    """``name`` (or, for a CSV, its ``.tab`` form) if ``folder`` holds it as a file (or, ``name/``, a folder)."""
    if name.endswith("/"):
        return name if (folder / name).is_dir() else None
    for candidate in (name, *((name[:-4] + ".tab",) if name.endswith(".csv") else ())):
        if (folder / candidate).is_file():
            return candidate
    return None


def _here(folder: Path) -> dict[str, str]:
    return {name: held for name, official in OFFICIAL_FILES.items()
            if (held := next(filter(None, (_holds(folder, f) for f in official.files)), None))}


def recognise(folder: str | Path) -> dict[str, str]:
    """The data sets whose official files ``folder`` holds: config name -> the first such file found, relative to
    ``folder`` (``ISIC2018_Task3_Training_GroundTruth.csv``). When ``folder`` itself holds none, its sub-folders are
    looked at (``isic2018/ISIC2018_Task3_...``: a data root, or a download unpacked one folder deeper). Nothing
    for a folder that does not exist or looks like no data set."""
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    found = _here(folder)
    if found:
        return found
    try:
        subs = sorted(p for p in folder.iterdir() if p.is_dir())[:SUB_FOLDERS_LOOKED_AT]
    except OSError:
        return {}
    for sub in subs:
        for name, held in _here(sub).items():
            found.setdefault(name, f"{sub.name}/{held}")
    return found


def wrong_folder_note(folder: str | Path, expected: str | None) -> str:
    """What to add to a "file missing" error of the ``expected`` config's datamodule reading ``folder``: the data
    sets ``folder`` looks like (with the file that shows it and their configs) and the files ``expected``'s folder
    holds, or the sub-folder that holds ``expected`` (a data root given as the data set's root). Empty when
    ``folder`` itself looks like the ``expected`` data set (the error is then about that download) or like none.

    Example: `` This folder looks like ISIC 2018 Task 3 (it holds ISIC2018_Task3_Training_GroundTruth.csv); its config
    is isic2018_task3. ISIC 2017 (Part 3) expects ISIC-2017_Training_Part3_GroundTruth.csv, ...``
    """
    folder = Path(folder)
    found = recognise(folder)
    if not found or expected in _here(folder):
        return ""
    if expected in found:  # one folder down
        sub, held = found[expected].split("/", 1)
        return (f" This folder holds {OFFICIAL_FILES[expected].title} one folder down ('{folder / sub}' holds "
                f"{held}): give that folder as the data set's root.")
    looks = "; ".join(f"{OFFICIAL_FILES[name].title} (it holds {held}); its config is {name}"
                      for name, held in found.items())
    note = f" This folder looks like {looks}."
    if expected in OFFICIAL_FILES:
        official = OFFICIAL_FILES[expected]
        note += (f" {official.title} expects {', '.join(official.files[:3])}: give that data set's own folder, or "
                 "the config of the data set this folder holds.")
    return note
