"""ISIC 2018 (Codella et al. 2019): task 1 lesion segmentation, task 2 attributes, task 3 diagnosis.

Download from https://challenge.isic-archive.com/data/#2018 and keep the folders as is::

    ROOT/ISIC2018_Task1-2_{Training,Validation,Test}_Input/ISIC_0000000.jpg
    ROOT/ISIC2018_Task1_{Training,Validation,Test}_GroundTruth/ISIC_0000000_segmentation.png     (0/255)
    ROOT/ISIC2018_Task2_Training_GroundTruth_v3/ISIC_0000000_attribute_<attribute>.png
    ROOT/ISIC2018_Task2_{Validation,Test}_GroundTruth/...
    ROOT/ISIC2018_Task3_{Training,Validation,Test}_Input/ISIC_0024306.jpg
    ROOT/ISIC2018_Task3_{Training,Validation,Test}_GroundTruth.csv     image,MEL,NV,BCC,AKIEC,BKL,DF,VASC
        (or as published with HAM10000: lesion_id,image_id,dx,dx_type,age,sex,localization,dataset)
    ROOT/ISIC2018_Task3_Training_LesionGroupings.csv                   image,lesion_id,diagnosis_confirm_type

Task 3's subgroup metadata (sex, age, body site) exists only in ground truths of the HAM10000 layout (e.g. the test
truth as published with HAM10000 on Harvard Dataverse); the challenge's own CSVs carry none.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from typing_extensions import override

from datamodules import splits
from datamodules.datasets.pooled import HAM_CLASSES, PooledDataset, PooledReader, one_hot_labels
from datamodules.datasets.reader import ReaderDataset, SplitReader
from datamodules.datasets.table import ImageTable
from dermlab.challenge.truth import read_truth
from dermlab.errors import DataError
from dermlab.files.io import image_paths, read_table, require_dir
from dermlab.files.listing import images_by_stem
from dermlab.files.metadata import patient_fields, patient_rows
from dermlab.files.tables import locate, read_header

FOLDERS = {"train": "Training", "val": "Validation", "test": "Test"}
ATTRIBUTES = ("globules", "milia_like_cyst", "negative_network", "pigment_network", "streaks")
CONFIRM_TO_DX_TYPE = {"histopathology": "histo", "serial imaging showing no change": "follow_up",
                      "single image expert consensus": "consensus",
                      "confocal microscopy with consensus dermoscopy": "confocal"}
HINT = "Download ISIC 2018 from https://challenge.isic-archive.com/data/#2018 or use `dermlab synth`."


class ISIC2018SegmentationReader(SplitReader):
    """Tasks 1 and 2: images with their lesion mask (task 1) or five attribute masks (task 2).

    Batches carry ``mask`` (B, K, H, W) in {0, 1}, transformed jointly with the image, and each image's
    ``original_size``. ``cv_fold`` (0..n_folds-1) replaces the official validation set by a fold of the training
    images, as the ``isic2018`` paper's 5-fold cross-validation does; ``test_set: validation`` then tests on the
    released validation set (where the paper reports Tables 1-2) instead of the released test set.

    Args:
        root: the folder as downloaded (see the module).
        task: 1 (one lesion mask per image, class ``lesion``) or 2 (the five attribute masks).
        cv_fold: the training fold (0..n_folds-1) that validates instead of the released validation set; None:
            the released splits.
        n_folds: the number of folds of ``cv_fold``.
        test_set: ``test`` (the released test set) or ``validation`` (the released validation set; needs
            ``cv_fold``).
        **kwargs: the further arguments of :class:`~datamodules.datasets.reader.SplitReader` (``seed``,
            ``on_bad_image``, ...) or, in a data module, of :class:`~datamodules.base.SkinDataModule`.

    Raises:
        ValueError: an unknown ``task`` or ``test_set``, or ``test_set: validation`` without ``cv_fold``.
    """

    def __init__(self, root: str, task: Literal[1, 2] = 1, cv_fold: int | None = None, n_folds: int = 5,
                 test_set: Literal["test", "validation"] = "test", **kwargs: Any) -> None:
        super().__init__(root, **kwargs)
        if task not in (1, 2):
            raise ValueError(f"task must be 1 or 2, got {task!r}")
        if test_set not in ("test", "validation"):
            raise ValueError(f"test_set must be 'test' or 'validation', got {test_set!r}")
        if test_set == "validation" and cv_fold is None:
            raise ValueError("test_set: validation needs cv_fold (a training fold then validates); otherwise the "
                             "released validation set would both pick the checkpoint and test it")
        self.task, self.cv_fold, self.n_folds, self.test_set = task, cv_fold, n_folds, test_set
        self.class_names = ("lesion",) if task == 1 else ATTRIBUTES

    def mask_file_names(self, image_id: str) -> list[str]:
        """The official file name of each predicted mask of an image (submission and ground-truth naming)."""
        if self.task == 1:
            return [f"{image_id}_segmentation.png"]
        return [f"{image_id}_attribute_{a}.png" for a in ATTRIBUTES]

    def truth_folder(self, split: str) -> Path:
        """The released ground-truth folder of ``split`` (``train``, ``val`` or ``test``) for this task: task 2's
        ``..._GroundTruth_v3`` where it exists (the training truth's name), else the plain name.

        Raises:
            KeyError: another split name.
        """
        folder = FOLDERS[split]
        if self.task == 1:
            return self.root / f"ISIC2018_Task1_{folder}_GroundTruth"
        candidates = [self.root / f"ISIC2018_Task2_{folder}_GroundTruth{v}" for v in ("_v3", "")]
        return next((c for c in candidates if c.is_dir()), candidates[0])

    def official_truth_folder(self, split: str) -> Path | None:
        """The official ground-truth folder holding exactly the masks of ``split`` (the full-size files the
        challenge scores), or None when the split is a cross-validation fold (its folder holds other images too).
        """
        if split == "test":
            return self.truth_folder("val" if self.test_set == "validation" else "test")
        return None if self.cv_fold is not None else self.truth_folder(split)

    def read_official(self, split: str) -> ImageTable:
        """The released images of ``split`` (``train``, ``val`` or ``test``; every ``ISIC_<7 digits>`` image of
        its input folder, in id order) with their mask files (checked at screening); labels are all -1.

        Raises:
            DataError: the data root or the split's ground-truth folder is missing, or its input folder holds no
                images.
        """
        require_dir(self.root, "data root", HINT)
        images = self.root / f"ISIC2018_Task1-2_{FOLDERS[split]}_Input"
        found = images_by_stem(images, keep=lambda p: re.fullmatch(r"ISIC_\d{7}", p.stem) is not None)
        others = sorted(p.name for p in images_by_stem(images).values()) if not found and images.is_dir() else []
        if others:  # images, but none by an official name: not a silently empty split
            raise DataError(f"'{images}' holds {len(others)} image(s) but none named ISIC_<7 digits> (e.g. "
                            f"{', '.join(others[:3])}); the task 1–2 readers take the images by their official "
                            f"names: restore them (re-download or unzip the folder again). {HINT}")
        ids = sorted(found)
        paths = [found[i] for i in ids] or image_paths(images, ids, images)  # the latter stops: no images
        truth = require_dir(self.truth_folder(split), f"task {self.task} ground-truth folder",
                            f"Download it next to the images. {HINT}")
        masks = [[truth / name for name in self.mask_file_names(i)] for i in ids]
        return ImageTable(ids, paths, np.full(len(ids), -1), truth, masks=masks)

    @override
    def read_split(self, split: str) -> ImageTable:
        if split == "test":
            return self.read_official("val" if self.test_set == "validation" else "test")
        if self.cv_fold is None:
            return self.read_official(split)
        pool = self.read_official("train")
        folds = splits.kfold(len(pool), self.cv_fold, self.n_folds, self.seed)
        return pool.subset(folds["train" if split == "train" else "val"])


class ISIC2018Task3Reader(PooledReader):
    """Task 3, seven-class diagnosis. ``split: official`` uses the released validation / test sets;
    ``split: holdout`` (dds §3) moves ``val_size`` random training images into the released validation
    set (9016 training / 1192 validation with 999) and tests on the released test set.

    ``test_set: validation`` (with ``split: holdout``) tests on the released validation set instead — the 193
    images of the ``isic2018`` paper's Table 3 — and validates (picks the checkpoint) on the ``val_size``
    held-out training images (whole lesions) alone, so the 193 images are never used to choose.

    The base class's submission (``image,MEL,NV,BCC,AKIEC,BKL,DF,VASC``) is the official task 3 format.

    Raises:
        ValueError: ``test_set: validation`` without ``split: holdout``.
    """

    def __init__(self, root: str, split: Literal["official", "kfold", "patch", "weighting", "holdout"] = "official",
                 test_set: Literal["test", "validation"] = "test", **kwargs: Any) -> None:
        super().__init__(root, split=split, **kwargs)
        if test_set not in ("test", "validation"):
            raise ValueError(f"test_set must be 'test' or 'validation', got {test_set!r}")
        if test_set == "validation" and split != "holdout":
            raise ValueError("test_set: validation needs split: holdout (held-out training images validate); "
                             f"with split {split!r} the released validation set would both pick the checkpoint "
                             "and test it, or training images would go unused")
        self.test_set = test_set

    def read_labelled(self, split: str) -> ImageTable:
        """The released task 3 images of ``split`` (``train``, ``val`` or ``test``) with their labels; training
        images get their lesion ids and ``dx_type`` from ``ISIC2018_Task3_Training_LesionGroupings.csv`` where the
        truth does not carry them.

        Raises:
            DataError: a missing file, a malformed truth, grouping rows missing or unknown, or ``kfold`` /
                ``weighting`` without lesion ids.
        """
        require_dir(self.root, "data root", HINT)
        csv = self.root / f"ISIC2018_Task3_{FOLDERS[split]}_GroundTruth.csv"
        result = self.read_ground_truth(csv, self.root / f"ISIC2018_Task3_{FOLDERS[split]}_Input")
        groupings = self.root / "ISIC2018_Task3_Training_LesionGroupings.csv"
        if split == "train" and result.groups is None and locate(groupings) is not None:
            ids = result.ids
            lesions = read_table(groupings, ("image", "lesion_id", "diagnosis_confirm_type")).set_index("image")
            absent = [i for i in ids if i not in lesions.index]
            if absent:
                raise DataError(f"'{groupings}' has no row for {len(absent)} training image(s), e.g. {absent[0]}.")
            result.groups = lesions.loc[ids, "lesion_id"].tolist()
            confirm = lesions.loc[ids, "diagnosis_confirm_type"].map(CONFIRM_TO_DX_TYPE)
            if confirm.isna().any():
                raise DataError(f"'{groupings}' holds an unknown diagnosis_confirm_type; expected one of "
                                f"{list(CONFIRM_TO_DX_TYPE)}.")
            result.extra["dx_type"] = confirm.tolist()
        elif split == "train" and result.groups is None and self.scheme in ("kfold", "weighting"):
            raise DataError(f"split {self.scheme!r} groups images by lesion but '{groupings}' is missing.")
        return result

    def read_ground_truth(self, csv: Path, images: Path) -> ImageTable:
        """A task 3 truth in either published layout (:func:`dermlab.challenge.truth.read_truth`) with its images: the
        challenge's ``image,MEL,NV,BCC,AKIEC,BKL,DF,VASC``, or HAM10000's ``lesion_id,image_id,dx,...,dataset``
        (the test truth as published with HAM10000), whose ``lesion_id`` become the groups and ``dx_type`` the
        confirmation. ``extra['score_weight']`` holds the official score weight (0 for ISIC_0035068, a row with an
        empty ``dataset``). Also the layout of extra training images (``extra_train_csv``, e.g. the ``isic2018``
        paper's Dermofit VASC / DF images)."""
        truth = read_truth(csv, HINT)
        if truth.layout not in ("isic2018", "ham10000"):
            raise DataError(f"'{csv}' is an {truth.layout} ground truth; task 3 needs "
                            f"image,{','.join(HAM_CLASSES)} or the HAM10000 layout (lesion_id,image_id,dx,...).")
        ids = truth.labels.index.tolist()
        labels = one_hot_labels(truth.labels[list(HAM_CLASSES)].rename_axis("image").reset_index(), HAM_CLASSES, csv)
        return ImageTable(ids, image_paths(images, ids, truth.path), labels, truth.path, groups=truth.groups,
                          extra={**truth.extra, "score_weight": truth.weights.tolist()})

    @override
    def read_pool(self) -> ImageTable:
        return self.read_labelled("train")

    def patient_metadata(self, split: str) -> pd.DataFrame:
        """``age``, ``sex`` and ``localization`` of ``split``'s images from whichever of the released ground
        truths (training, validation, test) are in the HAM10000 layout; ``unknown`` for images of the others (the
        challenge layout ``image,MEL,...`` has no metadata), no columns when none is."""
        frames = []
        for folder in FOLDERS.values():
            csv = locate(self.root / f"ISIC2018_Task3_{folder}_GroundTruth.csv")  # or the .tab Dataverse serves
            if csv is None or "localization" not in read_header(csv)[1]:
                continue
            table = read_table(csv, ("image_id",), hint=HINT)
            frames.append(patient_fields(table.image_id.tolist(), str(csv), **{
                name: table[name] for name in ("age", "sex", "localization") if name in table.columns}))
        if not frames:
            return super().patient_metadata(split)
        return patient_rows(pd.concat(frames), self.table(split).ids)

    @override
    def read_official_test(self) -> ImageTable:
        return self.read_labelled("test")

    @override
    def read_split(self, split: str) -> ImageTable:
        if self.test_set == "validation":  # split: holdout; the released validation set is the test set
            return self.weigh(self.read_labelled("val")) if split == "test" else super().read_split(split)
        if self.scheme == "official":
            return self.weigh(self.read_labelled(split))
        if self.scheme == "holdout" and split == "val":
            return super().read_split("val").concat(self.read_labelled("val"))
        return super().read_split(split)


class ISIC2018SegmentationDataset(ReaderDataset):
    """ISIC 2018 task 1 (lesion) or 2 (attribute) segmentation, one split, as a plain torch ``Dataset``; keyword
    arguments go to :class:`ISIC2018SegmentationReader` (e.g. ``task``).

    Items as :class:`~datamodules.datasets.reader.ReaderDataset` gives them.
    """

    reader_class = ISIC2018SegmentationReader


class ISIC2018Task3Dataset(PooledDataset):
    """ISIC 2018 task 3 (seven-class diagnosis), one split, as a plain torch ``Dataset``; keyword arguments go to
    :class:`ISIC2018Task3Reader`; ``scheme`` is the reader's ``split`` (the split scheme), ``fold`` its fold.

    Items as :class:`~datamodules.datasets.reader.ReaderDataset` gives them.
    """

    reader_class = ISIC2018Task3Reader
