"""Synthetic data sets written in the official on-disk layouts (see ``render.py`` for the images).

``WRITERS`` maps a data-set name to a function ``(out, n, size, seed) -> {split: count}``;
later data sets add their writer here and ``dermlab synth --dataset NAME`` picks it up. ``SIZES`` says what ``n``
counts for each writer and the smallest ``n`` whose twin the datamodule sets up with its default split for any seed
(``dermlab synth`` refuses a smaller ``--n``; :func:`write_synthetic` writes any ``n >= 1``, for tests that pass
their own split options).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from datamodules.synthetic import clinical, external, ham, isic2016, isic2019, isic2020, isic2024, pad_ufes20
from datamodules.synthetic.clinical import write_derm7pt, write_vitiligo
from datamodules.synthetic.external import write_ddi, write_fitzpatrick17k
from datamodules.synthetic.ham import write_ham10000, write_isic2018_task1, write_isic2018_task2, write_isic2018_task3
from datamodules.synthetic.isic2016 import write_isic2016
from datamodules.synthetic.isic2017 import write_isic2017
from datamodules.synthetic.isic2019 import write_isic2019
from datamodules.synthetic.isic2020 import write_isic2020
from datamodules.synthetic.isic2024 import write_isic2024
from datamodules.synthetic.pad_ufes20 import write_pad_ufes20
from dermlab.errors import DataError

Writer = Callable[[Path, int, int, int], dict[str, int]]

WRITERS: dict[str, Writer] = {
    "isic2016": write_isic2016,
    "isic2017": write_isic2017,
    "isic2018_task1": write_isic2018_task1,
    "isic2018_task2": write_isic2018_task2,
    "isic2018_task3": write_isic2018_task3,
    "isic2019": write_isic2019,
    "isic2020": write_isic2020,
    "isic2024": write_isic2024,
    "ham10000": write_ham10000,
    "vitiligo": write_vitiligo,
    "derm7pt": write_derm7pt,
    "pad_ufes20": write_pad_ufes20,
    "ddi": write_ddi,
    "fitzpatrick17k": write_fitzpatrick17k,
}


class Size(NamedTuple):
    """What a writer's ``n`` counts, and the smallest ``n`` (with why) whose twin its datamodule sets up."""

    counts: str
    minimum: int
    why: str


_OFFICIAL = "training images (validation n // 4 and test n // 2, at least 8 each)"
_ONE = "each split has images"
SIZES: dict[str, Size] = {
    "isic2016": Size("training images (test n // 2, at least 8); set the datamodule's val_size below n (its "
                     "default, 251, needs n >= 252)", isic2016.MIN_N, "one training and one validation image"),
    "isic2017": Size(_OFFICIAL, 1, _ONE),
    "isic2018_task1": Size(_OFFICIAL, 1, _ONE),
    "isic2018_task2": Size(_OFFICIAL, 1, _ONE),
    "isic2018_task3": Size(_OFFICIAL, 1, _ONE),
    "isic2019": Size("training images, the pool the datamodule's folds are drawn from", isic2019.MIN_N,
                     "5 lesion-grouped folds need one class with 5 images"),
    "isic2020": Size("training images, copies included (the datamodule's folds leave the copies out)", isic2020.MIN_N,
                     "5 patient-grouped folds need 5 patients and one class with 5 images"),
    "isic2024": Size("training images (test-image.hdf5 gets n // 2, at least 8)", isic2024.MIN_N,
                     "5 patient-grouped folds need 5 patients of 3 images"),
    "ham10000": Size("images, the pool the datamodule's folds are drawn from", ham.HAM10000_MIN_N,
                     "5 lesion-grouped folds need one class with 5 images"),
    "vitiligo": Size(_OFFICIAL, clinical.VITILIGO_MIN_N, "training needs both classes"),
    "derm7pt": Size("all images, split as release_v0 (39 % test, 20 % valid, 41 % train)", clinical.DERM7PT_MIN_N,
                    "each of test, valid and train needs an image"),
    "pad_ufes20": Size("images, the pool the datamodule's folds are drawn from", pad_ufes20.MIN_N,
                       "5 patient-grouped folds need 5 patients and one of the six classes with 5 images"),
    "ddi": Size("images, all of them test images under the default split: external", external.DDI_MIN_N,
                "the test images hold both classes"),
    "fitzpatrick17k": Size("images, the pool the datamodule's folds are drawn from", external.FITZPATRICK17K_MIN_N,
                           "5 stratified folds test every class when each of the 3 has 5 images"),
}

DONE_MARKER = ".dermlab_synthetic_done"


def write_synthetic(dataset: str, out: str | Path, n: int = 200, size: int = 64, seed: int = 0) -> dict[str, int]:
    """Write the synthetic ``dataset`` under ``out``; a marker file records a finished write.

    Raises:
        DataError: ``out`` holds files but no marker: it may be a real download (``/data/isic2017`` given where a
            synthetic copy was meant), which is never written into.
    """
    if dataset not in WRITERS:
        raise ValueError(f"unknown synthetic data set {dataset!r}; choose one of {sorted(WRITERS)}")
    out = Path(out)
    if out.is_dir() and any(out.iterdir()) and not (out / DONE_MARKER).exists():
        raise DataError(f"'{out}' already holds files and no synthetic set (no {DONE_MARKER}): it may be a real "
                        "download, which the synthetic writer never writes into. Write the synthetic set to an empty "
                        "or new folder (or remove a half-written synthetic copy first).")
    out.mkdir(parents=True, exist_ok=True)
    counts = WRITERS[dataset](out, n, size, seed)
    (out / DONE_MARKER).write_text(f"dataset={dataset} n={n} size={size} seed={seed}\n")
    return counts


def ensure_synthetic(dataset: str, out: str | Path, n: int = 200, size: int = 64, seed: int = 0) -> bool:
    """Write the data set unless the same one is already there; returns True if it wrote.

    A finished set written with other settings is an error rather than silently reused (a 160-image
    set must never stand in for the demo's 600).
    """
    marker = Path(out) / DONE_MARKER
    wanted = f"dataset={dataset} n={n} size={size} seed={seed}"
    if marker.exists():
        found = marker.read_text().strip()
        if found != wanted:
            raise DataError(f"'{out}' already holds a synthetic set with {found}, not {wanted}; remove the folder "
                            "(rm -r) or write to another one.")
        return False
    write_synthetic(dataset, out, n, size, seed)
    return True
