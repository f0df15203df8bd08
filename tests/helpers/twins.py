"""Synthetic twins laid out as the documentation says: one sub-folder per data set under a data root.

``write_data_root(root)`` writes ``root/isic2016``, ``root/isic2017``, ``root/isic2018`` (tasks 1, 2 and 3 in the
one folder, as downloaded), ``root/isic2019``, ``root/isic2020``, ``root/isic2024``, ``root/ham10000``,
``root/derm7pt``, ``root/vitiligo`` and ``root/pad_ufes20``, each through ``dermlab synth`` (the same writer users
run), with the folder names of :mod:`dermlab.files.data_folders`. The make-target and documented-command tests read
them.
"""

from __future__ import annotations

from pathlib import Path

from dermlab.files.data_folders import FOLDERS

TWIN_N = 120  # training images per set: enough for the paper grids' stand-in splits (4 lesion-grouped parts, 5 folds)
TWIN_SIZE = 64


def write_data_root(root: Path, names: list[str] | None = None, n: int = TWIN_N, size: int = TWIN_SIZE) -> Path:
    """Write the twins of ``names`` (default: every data set of :data:`dermlab.files.data_folders.FOLDERS`) under
    ``root/<folder>``; returns ``root``."""
    from datamodules.synthetic import write_synthetic

    for name in names or list(FOLDERS):
        folder = root / FOLDERS[name].folder
        write_synthetic(name, folder, n=n, size=size, seed=0)
    return root
