"""How many images each split of a data set holds, from the release as published: the one table the compute planner
(:mod:`dermlab.grid.plan`) counts from, without the data.

Keyed by the data-set config names of :mod:`dermlab.files.data_folders`. A release's ``train`` is its labelled
training images, or the whole labelled pool where the data set publishes no split of its own (HAM10000, ISIC 2019,
ISIC 2020, ...); ``val`` and ``test`` are the released validation and test images with labels (0: none released).
The counts are those the data-set pages of the documentation give, and for ISIC 2018 tasks 1 and 2 (not given
there) the challenge's: 2,594 training, 100 validation and 1,000 test images.

:func:`split_sizes` applies a split scheme (:mod:`datamodules.splits`; ``docs/splits.md``) to those counts with the
configured fractions: ``kfold`` (K − 2 folds train, one validates, one tests), ``patch`` (two of four parts train,
one validates, one tests), ``weighting`` (80 / 20, ``val_fraction`` of the training part validates), ``holdout``
(``val_size`` training images join the validation set), ``external`` (every image tests), ISIC 2018 tasks 1–2's
``cv_fold`` (one of ``n_folds`` training folds validates), derm7pt's ``merge_valid`` and ISIC 2016's ``val_size``.
:func:`images_per_split` applies it to a built datamodule, or counts the images a downloaded copy's split files list.
The real splits differ from these by a few images (whole lesions are kept on one side; derm7pt's two diagnoses
without a HAM10000 class are left out); ``dermlab audit`` prints the exact ones of a downloaded copy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dermlab.errors import DataError


@dataclass(frozen=True)
class Release:
    """A release's labelled images: ``train`` (the pool, where the data set has no split of its own), ``val`` and
    ``test`` (0: not released with labels), and where the counts come from."""

    train: int
    val: int
    test: int
    source: str


#: config name -> its release's image counts (the data-set pages of the documentation give the same)
RELEASES: dict[str, Release] = {
    "isic2016": Release(900, 0, 379, "ISBI 2016 challenge Part 3 (Gutman et al., arXiv 2016)"),
    "isic2017": Release(2000, 150, 600, "ISIC 2017 challenge Part 3 (Codella et al., ISBI 2018)"),
    "isic2018_task1": Release(2594, 100, 1000, "ISIC 2018 challenge task 1 (Codella et al., arXiv 2019)"),
    "isic2018_task2": Release(2594, 100, 1000, "ISIC 2018 challenge task 2 (Codella et al., arXiv 2019)"),
    "isic2018_task3": Release(10015, 193, 1512, "ISIC 2018 challenge task 3, training = HAM10000 (Codella et al., "
                                                "arXiv 2019)"),
    "isic2019": Release(25331, 0, 0, "ISIC 2019 challenge training set; no test truth released"),
    "isic2020": Release(32701, 0, 0, "SIIM-ISIC 2020 training set: 33,126 images less the 425 of its duplicates "
                                     "list (Rotemberg et al., Sci. Data 2021)"),
    "isic2024": Release(401059, 0, 0, "ISIC 2024 (SLICE-3D) training set (Kurtansky et al., Sci. Data 2024)"),
    "ham10000": Release(10015, 0, 0, "HAM10000 (Tschandl et al., Sci. Data 2018)"),
    "derm7pt": Release(413, 203, 395, "Derm7pt release_v0, 1,011 cases (Kawahara et al., IEEE JBHI 2019)"),
    "vitiligo": Release(672, 268, 401, "the public vitiligo set of the dds paper (Mishra et al., MICCAI 2022)"),
    "pad_ufes20": Release(2298, 0, 0, "PAD-UFES-20 (Pacheco et al., Data in Brief 2020)"),
    "ddi": Release(656, 0, 0, "DDI (Daneshjou et al., Sci. Adv. 2022)"),
    "fitzpatrick17k": Release(16577, 0, 0, "Fitzpatrick17k, every row of its CSV (Groh et al., CVPR Workshops "
                                           "2021); its non-neoplastic images are left out when it tests a dermoscopy "
                                           "model, so this overcounts such a test"),
    "isic_sample": Release(105, 34, 34, "the shipped UDA-1 sample: 173 intact images split 60 / 20 / 20"),
}


def split_sizes(name: str, settings: Mapping[str, Any]) -> tuple[int, int, int]:
    """(train, validation, test) images of data set ``name`` under its datamodule's split ``settings``.

    Args:
        name: a key of :data:`RELEASES` (a data-set config name).
        settings: the datamodule's arguments (``data.init_args``): ``split``, ``n_folds``, ``val_size``,
            ``val_fraction``, ``test_set``, ``cv_fold`` and ``merge_valid`` are read; missing ones take the
            datamodules' defaults.

    Raises:
        DataError: a data set without a release in the table (the message lists those with one).
    """
    if name not in RELEASES:
        raise DataError(f"no published split sizes for data set {name!r} (those known: {', '.join(RELEASES)}); "
                        "add its release to dermlab/files/split_sizes.py, or count a downloaded copy (--data-root).")
    release = RELEASES[name]
    pool, folds = release.train, int(settings.get("n_folds") or 5)
    scheme = settings.get("split") or "official"
    if scheme == "external":
        return 0, 0, release.train + release.val + release.test
    if scheme == "kfold":
        return round(pool * (folds - 2) / folds), round(pool / folds), round(pool / folds)
    if scheme == "patch":
        return round(pool / 2), round(pool / 4), round(pool / 4)
    if scheme == "weighting":
        train = round(pool * 0.8)
        val = round(train * float(settings.get("val_fraction") or 0.0))
        return train - val, val, pool - train
    moved = int(settings.get("val_size") or 0)
    if scheme == "holdout" and settings.get("test_set") == "validation":
        return pool - moved, moved, release.val
    if scheme == "holdout":
        return pool - moved, release.val + moved, release.test
    if settings.get("cv_fold") is not None:
        test = release.val if settings.get("test_set") == "validation" else release.test
        return round(pool * (folds - 1) / folds), round(pool / folds), test
    if settings.get("merge_valid"):
        return release.train + release.val, 0, release.test
    if release.val == 0 and moved:  # no released validation set: val_size random training images (ISIC 2016)
        return pool - moved, moved, release.test
    return release.train, release.val, release.test


def images_per_split(data: Any, settings: Mapping[str, Any], count: bool = False) -> list[int]:
    """[train, val, test] images of a datamodule ``data`` built from ``settings`` (its ``data.init_args``): the
    published sizes (:func:`split_sizes`; a ``test_on`` test split is the other data set's), or with ``count`` the
    images its split files list under its root (CSVs and folders read, no image decoded; ``extra_train_csv`` images
    count as training images).

    Raises:
        DataError: a data set without published sizes, or with ``count`` a split file that cannot be read.
    """
    if count:
        train, val, test = (len(data.raw_table(split) or ()) for split in ("train", "val", "test"))
        return [train + len(data.raw_table("extra") or ()), val, test]
    sizes = list(split_sizes(data.config_name or type(data).__name__, settings))
    if data.test_on is not None:
        sizes[2] = split_sizes(data.test_on.config_name or type(data.test_on).__name__,
                               (settings.get("test_on") or {}).get("init_args") or {})[2]
    return sizes
