"""Shared LightningDataModule: an image table per split → dataset, transforms, samplers and loaders.

Each data set subclass maps its official folder and CSV layout to an :class:`ImageTable` per
split (``read_split``) and names its classes; this base adds what every data set shares: the
bad-image policy, the preprocessing cache, class counts, imbalance samplers, per-sample loss
weights, split CSVs in the run folder and the DataLoaders.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass, field, replace
from pathlib import Path
from stat import S_ISREG
from typing import Literal

import lightning.pytorch as L
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.accelerators import CPUAccelerator
from torch.utils.data import DataLoader, Dataset

from datamodules.audit import SplitAudit, audit_splits, enforce
from datamodules.cache import CacheFormat, ImageCache
from datamodules.crops import ordered_crops, random_crops
from datamodules.cross import CrossTest
from datamodules.fingerprints import FingerprintStore
from datamodules.samplers import BalancedBatchSampler, OversamplingSampler, SeededRandomSampler
from datamodules.transforms import IMAGENET, Normalisation, TransformSpec, build_transforms
from dermlab.errors import DataError, clean_message
from dermlab.files.data_folders import wrong_folder_note
from dermlab.files.io import image_size, load_rgb
from dermlab.files.masks import load_mask
from dermlab.runtime.resources import default_workers
from dermlab.runtime.seeding import derive, run_seed

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")


@dataclass
class ImageTable:
    """The images of one split and what is known about each.

    ``labels`` are class indices (-1 where unknown); ``masks`` holds, per image, the mask files
    of a segmentation task; ``groups`` the lesion (or patient) ids, ``""`` where unknown; ``weights``
    per-sample loss weights.
    """

    ids: list[str]
    paths: list[Path]
    labels: np.ndarray
    source: Path  # the CSV (or folder) the table came from, named in error messages
    masks: list[list[Path]] | None = None
    groups: list[str] | None = None
    weights: np.ndarray | None = None
    extra: dict[str, list] = field(default_factory=dict)  # e.g. dx_type, for split CSVs and weighting
    screened: bool = False  # on_bad_image already applied (subsets of a screened table stay screened)

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, index) -> ImageTable:
        index = np.asarray(index, dtype=int)
        pick = lambda values: None if values is None else [values[i] for i in index]  # noqa: E731
        return replace(self, ids=pick(self.ids), paths=pick(self.paths), labels=self.labels[index],
                       masks=pick(self.masks), groups=pick(self.groups),
                       weights=None if self.weights is None else self.weights[index],
                       extra={k: pick(v) for k, v in self.extra.items()})

    def concat(self, other: ImageTable) -> ImageTable:
        """This table followed by ``other``; masks, groups, weights and extra columns only where both have them."""
        both = lambda a, b: None if a is None or b is None else [*a, *b]  # noqa: E731
        # lesion ids where either side has them ("" = unknown lesion), so the split audit still sees them
        groups = None if self.groups is None and other.groups is None else [
            *(self.groups or [""] * len(self)), *(other.groups or [""] * len(other))]
        return replace(self, ids=[*self.ids, *other.ids], paths=[*self.paths, *other.paths],
                       labels=np.concatenate([self.labels, other.labels]), masks=both(self.masks, other.masks),
                       groups=groups,
                       weights=None if self.weights is None or other.weights is None
                       else np.concatenate([self.weights, other.weights]),
                       extra={k: [*v, *other.extra[k]] for k, v in self.extra.items() if k in other.extra},
                       screened=self.screened and other.screened)

    def frame(self, class_names) -> pd.DataFrame:
        """One row per image: id, label name, and the grouping / extra columns."""
        frame = pd.DataFrame({"image_id": self.ids,
                              "label": [class_names[i] if i >= 0 else "" for i in self.labels]})
        if self.groups is not None:
            frame["lesion_id"] = self.groups
        for name, values in self.extra.items():
            frame[name] = values
        return frame


_PLAIN_IS_FILE = type(Path()).is_file


def file_size(path: Path) -> int | None:
    """The size of image ``path`` in bytes; None when it is absent. An image inside a container
    (:class:`dermlab.files.hdf5.HDF5Image`) answers ``is_file`` for its own entry and has no size here (-1)."""
    if type(path).is_file is not _PLAIN_IS_FILE:  # a container's entry answers for itself
        return -1 if path.is_file() else None
    try:
        result = path.stat()  # one system call: existence, kind and size
    except OSError:
        return None
    return result.st_size if S_ISREG(result.st_mode) else None


def lone_last_image(images: int, batch_size: int, processes: int, source: Path, training: bool) -> bool:
    """Whether the training loader must drop its last batch because it would hold one image (per process under
    DDP): batch normalisation cannot normalise a batch of one, and PyTorch stops with a raw ``ValueError``. The
    order is drawn anew each epoch, so a different image sits out each time (logged once per set-up).

    Raises:
        DataError: when ``training`` (a Trainer is about to fit), a training split of fewer than two images per
            process, naming ``source``.
    """
    per_process = -(-images // max(1, processes))
    if per_process < 2:
        if not training:
            return False  # a loader drawn by hand (no Trainer) serves its one image
        raise DataError(f"the training split of '{source}' holds {images} image(s): training needs at least 2 per "
                        f"process ({processes}) for batch normalisation; use more training images (a larger "
                        "--n for a synthetic twin, a smaller val_size) or fewer devices.")
    if batch_size > 1 and per_process % batch_size == 1:
        log.info("training: %d images per process make a last batch of one image, which batch normalisation "
                 "cannot train on: it is dropped each epoch (a different image each time)", per_process)
        return True
    return False


def shortlist(names: list[str], shown: int = 10) -> str:
    """``a, b, c`` for up to ``shown`` names, then ``… and N more``: a log line stays readable for 10,000 ids."""
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" … and {more:,} more" if more > 0 else "")


def warn_if_cache_too_small(max_side: int, needed: int) -> bool:
    """Warn (and return True) when cached copies of longer side ``max_side`` px are smaller than the ``needed``
    side (px) the pipeline resizes or crops to, so that every image would be enlarged after being shrunk."""
    if max_side >= needed:
        return False
    log.warning("max_side %d is smaller than the %d px the pipeline asks for (image_size, crop_size or resize_to): "
                "cached copies would be enlarged again; set max_side to at least %d.", max_side, needed, needed)
    return True


class ImageTableDataset(Dataset):
    """Decodes images (and masks) of an :class:`ImageTable` and applies one albumentations pipeline jointly.

    ``repeats`` > 1 serves every image that many times per epoch, each time through the (random)
    pipeline — e.g. the ``arl`` paper's 60 random patches per image, drawn online. ``views`` > 1 returns
    that many transformed copies of one image stacked as (views, C, H, W): the 9 test patches of ``arl``,
    whose predictions the module averages. ``crops`` > 0 cuts that many ordered ``crop_size`` crops from the
    transformed full-size image instead (``patch``: (N_C, C, s, s), see :mod:`datamodules.crops`);
    ``crop_positions: random`` cuts them at uniform random positions instead (``patch`` Multi-Crop training).

    Indices may be epoch-tagged (``epoch * len(dataset) + position``, as the training samplers yield them): the
    pipeline's random generators are then seeded from (``seed``, epoch, position) before each sample, so what
    an image gets depends on the run's seed and its place in the epoch only — not on the DataLoader workers.
    """

    def __init__(self, table: ImageTable, transform, cache: ImageCache | None = None, repeats: int = 1,
                 views: int = 1, crops: int = 0, crop_size: int = 224, seed: int = 0,
                 crop_positions: Literal["ordered", "random"] = "ordered"):
        if (views > 1 or crops) and table.masks is not None:
            raise ValueError("several views or crops per image are for classification; this table has masks")
        if views > 1 and crops:
            raise ValueError(f"give either several random views ({views}) or ordered crops ({crops}), not both")
        self.table, self.transform, self.cache = table, transform, cache
        self.repeats, self.views = max(1, repeats), max(1, views)
        if crop_positions not in ("ordered", "random"):
            raise ValueError(f"crop_positions must be ordered or random, got {crop_positions!r}")
        self.crops, self.crop_size, self.crop_positions = crops, crop_size, crop_positions
        self.seed = seed

    def __len__(self) -> int:
        return len(self.table) * self.repeats

    def _read(self, index: int) -> tuple[np.ndarray, list[np.ndarray]]:
        path = self.table.paths[index]
        mask_paths = self.table.masks[index] if self.table.masks is not None else []
        if self.cache is None:
            image = load_rgb(path)
            return image, [load_mask(m, image.shape[:2]) for m in mask_paths]
        return self.cache.image(path), [self.cache.mask(m, path) for m in mask_paths]

    def _seed_pipeline(self, epoch: int, position: int) -> None:
        generator = np.random.default_rng([self.seed % 2**32, epoch, position])
        self.transform.set_random_state(generator, random.Random(derive(self.seed, epoch, position)))

    def __getitem__(self, index: int) -> dict:
        epoch, position = divmod(index, len(self))
        self._seed_pipeline(epoch, position)
        index = position % len(self.table)
        image, masks = self._read(index)
        if self.views > 1:
            out, sample = {"image": torch.stack([self.transform(image=image)["image"] for _ in range(self.views)])}, {}
        elif masks:
            out = self.transform(image=image, masks=masks)
            sample = {"mask": torch.stack([torch.as_tensor(np.asarray(m)) for m in out["masks"]]).float() / 255.0,
                      # (H, W) of the file (not of a cached copy): predicted masks are written at this size
                      "original_size": torch.tensor(image.shape[:2] if self.cache is None
                                                    else image_size(self.table.paths[index]))}
        else:
            out, sample = self.transform(image=image), {}
        if self.crops:
            try:
                out["image"] = (ordered_crops(out["image"], self.crops, self.crop_size)
                                if self.crop_positions == "ordered" else
                                random_crops(out["image"], self.crops, self.crop_size,
                                             np.random.default_rng([self.seed % 2**32, epoch, position, 1])))
            except DataError as error:
                raise DataError(f"'{self.table.paths[index]}': {error}") from None
        weight = 1.0 if self.table.weights is None else float(self.table.weights[index])
        score_weights = self.table.extra.get("score_weight")
        if score_weights is not None:  # the official score weight: 0 leaves the image out of every metric
            sample["scored"] = bool(score_weights[index] != 0)
        return {"image": out["image"], "label": int(self.table.labels[index]), "weight": weight,
                "image_id": self.table.ids[index], **sample}


class SkinDataModule(L.LightningDataModule):
    """Base for every data set of the suite.

    Args:
        root: folder holding the data set exactly as downloaded (see the README per data set).
        image_size: side of the square network input in pixels (used by the presets).
        batch_size: images per batch (per device under DDP).
        num_workers: DataLoader worker processes; None (the default) picks them from the machine
            (:func:`dermlab.runtime.resources.default_workers`: a quarter of the cores when the model trains on the CPU,
            else the cores per device less one, at most 8). PyTorch runs each worker's torch on one thread.
        train_transforms: preset name, list of albumentations entries, or a yaml file holding such a list.
        eval_transforms: the same for validation, test and predict.
        predict_split: which split ``dermlab predict`` writes a submission for.
        sampling: ``none``; ``oversample`` (repeat classes to the largest count); ``balanced``
            (every batch holds the same number of images per class, also under DDP).
        on_bad_image: ``error`` stops at a missing or unreadable image; ``skip`` leaves it out,
            logging how many and which (it decodes every image once at set-up to find them).
        cache_dir: where the preprocessing cache lives (default ``~/.cache/dermlab``).
        max_side: if set, images are read from the cache, resized so the longer side is at most
            this many pixels (made on first use, or beforehand with ``dermlab prepare``); the same
            resize and augmentation then run on the cached copy. It should be at least the largest side the
            pipeline asks for (``image_size``, ``crop_size``, ``resize_to``), else a warning says that every
            image is enlarged again (512 suits 224–299 px inputs).
        cache_format: ``npy`` (default: raw uint8 arrays, no decoding, 0.59 MB a 512×384 image) or ``png``
            (lossless, about half the disk, 8–13 ms more per image read); see :mod:`datamodules.cache`.
        seed: seed of the data set's random splits.
        train_repeats: each training image is drawn this many times per epoch, through the random
            training pipeline each time (``arl``: 60 random centre patches per image).
        eval_views: validation / test / predict images go through the evaluation pipeline this many
            times; the batch is (B, views, C, H, W) and the module averages the views' probabilities
            (``arl``: 9 random patches at test time).
        train_crops: if > 0, every training image gives this many ordered crops of ``crop_size`` (cut after
            the training pipeline, which then keeps the image at full size): ``patch``'s Ordered-Crop.
        eval_crops: the same for validation / test / predict: ``patch``'s N_C ∈ {5, 9, 16} ordered crops.
        train_crop_positions: ``ordered`` (the ``train_crops`` at the fixed positions of evaluation: Ordered-Crop)
            or ``random`` (``train_crops`` uniform random positions per image and epoch, seeded by the run's seed,
            epoch and sample: ``patch``'s Multi-Crop trained on N_C random crops per image jointly, as the
            authors' code does).
        crop_size: side of the ordered crops (default ``image_size``).
        resize_to: [height, width] every image is resized to before its pipeline (``patch``: SPC images to
            HAM10000's 450 × 600; smaller on the synthetic CPU default).
        extra_train_csv: a CSV of further training images in the data set's own ground-truth format
            (``arl``: the paper's 1320 ISIC-archive images; ``isic2018`` task 3: Dermofit VASC / DF); they
            are added to the training split only, after any validation split has been drawn.
        extra_train_images: the folder of those images (default: the CSV's folder).
        leakage: what set-up does when the split audit (:mod:`datamodules.audit`) finds a test or validation
            image, lesion or pixel-identical copy on another side: ``error`` (default) stops, naming the first
            pairs and the count; ``warn`` logs it and goes on (e.g. to rerun a paper's own leaky protocol; the
            run's ``splits/audit.json`` and its grid report then say so).
        audit_pixels: also compare exact pixel fingerprints across splits (decoded once, then read from the
            cache folder); ``false`` checks ids and lesion ids only.
        near_duplicates: also compare perceptual hashes and report near-duplicate pairs (off by default).
        duplicates_csv: a published duplicates list (ISIC 2020 layout ``image_name_1,image_name_2``) the audit
            applies; by default ``<root>/ISIC_2020_Training_Duplicates.csv`` when that file exists.
        test_on: another data module (``class_path`` / ``init_args``) whose test split replaces this one's: train and
            validate here, test there (:mod:`datamodules.cross`). Its labels map onto the evaluation classes of
            the two class sets (:mod:`datamodules.taxonomies`; a pair without a mapping is refused), the split audit
            compares its test images with this data set's training and validation images, and only its reading
            options count (the images go through this module's evaluation pipeline).
        test_on_overlap: what set-up does with training / validation images that are ``test_on`` test images (same
            id, shared lesion or identical pixels): ``drop`` (default) leaves them out, logged and counted in
            ``splits/audit.json``; ``keep`` leaves them in for the ``leakage`` policy to judge.
    """

    class_names: tuple[str, ...] = ()

    def __init__(
        self,
        root: str,
        image_size: int = 224,
        batch_size: int = 32,
        num_workers: int | None = None,
        train_transforms: TransformSpec = "default",
        eval_transforms: TransformSpec = "none",
        predict_split: str = "test",
        sampling: Literal["none", "oversample", "balanced"] = "none",
        on_bad_image: Literal["error", "skip"] = "error",
        cache_dir: str | None = None,
        max_side: int | None = None,
        cache_format: CacheFormat = "npy",
        seed: int = 0,
        train_repeats: int = 1,
        eval_views: int = 1,
        train_crops: int = 0,
        eval_crops: int = 0,
        train_crop_positions: Literal["ordered", "random"] = "ordered",
        crop_size: int | None = None,
        resize_to: tuple[int, int] | None = None,
        extra_train_csv: str | None = None,
        extra_train_images: str | None = None,
        leakage: Literal["error", "warn"] = "error",
        audit_pixels: bool = True,
        near_duplicates: bool = False,
        duplicates_csv: str | None = None,
        test_on: SkinDataModule | None = None,
        test_on_overlap: Literal["drop", "keep"] = "drop",
    ):
        super().__init__()
        if train_repeats < 1 or eval_views < 1 or train_crops < 0 or eval_crops < 0:
            raise ValueError(f"train_repeats and eval_views must be ≥ 1 and the crop counts ≥ 0, got {train_repeats}, "
                             f"{eval_views}, {train_crops}, {eval_crops}")
        self.train_repeats, self.eval_views = train_repeats, eval_views
        self.train_crops, self.eval_crops, self.crop_size = train_crops, eval_crops, crop_size or image_size
        if train_crop_positions not in ("ordered", "random"):
            raise ValueError(f"train_crop_positions must be ordered or random, got {train_crop_positions!r}")
        self.train_crop_positions = train_crop_positions
        self.resize_to = tuple(resize_to) if resize_to else None
        self.root = Path(root).expanduser()
        self.image_size, self.batch_size, self.num_workers = image_size, batch_size, num_workers
        self.train_transforms, self.eval_transforms = train_transforms, eval_transforms
        if predict_split not in SPLITS:
            raise ValueError(f"predict_split must be one of {SPLITS}, got {predict_split!r}")
        if sampling not in ("none", "oversample", "balanced") or on_bad_image not in ("error", "skip"):
            raise ValueError(f"sampling={sampling!r} or on_bad_image={on_bad_image!r} is not a known choice")
        self.predict_split, self.sampling, self.on_bad_image = predict_split, sampling, on_bad_image
        self.cache = ImageCache(cache_dir, max_side, cache_format) if max_side else None
        if max_side:
            warn_if_cache_too_small(max_side, max(image_size, self.crop_size, *(self.resize_to or ())))
        if leakage not in ("error", "warn"):
            raise ValueError(f"leakage must be 'error' or 'warn', got {leakage!r}")
        self.leakage, self.audit_pixels, self.near_duplicates = leakage, audit_pixels, near_duplicates
        self.cache_dir = cache_dir
        self.normalisation: Normalisation = IMAGENET  # the attached model's, from setup() on (see follow())
        self.duplicates_csv = Path(duplicates_csv).expanduser() if duplicates_csv else None
        self.seed = seed
        self.extra_train_csv = Path(extra_train_csv).expanduser() if extra_train_csv else None
        self.extra_train_images = Path(extra_train_images).expanduser() if extra_train_images else None
        self.tables: dict[str, ImageTable] = {}
        self._absent_reported = False  # the whole data set's absent images are reported once (see screen())
        self._raw: dict[str, ImageTable | None] = {}
        self.split_audit: SplitAudit | None = None
        if test_on_overlap not in ("drop", "keep"):
            raise ValueError(f"test_on_overlap must be 'drop' or 'keep', got {test_on_overlap!r}")
        if isinstance(test_on, dict):  # a class_path / init_args entry not instantiated by the CLI (dermlab audit)
            test_on = instantiate_datamodule(test_on)
        self.test_on = test_on
        self.cross_test = None if test_on is None else CrossTest(self, test_on, test_on_overlap)

    # --- what a subclass provides -------------------------------------------------------
    def read_split(self, split: str) -> ImageTable:
        """Map the official files of ``split`` to an ImageTable, validating them."""
        raise NotImplementedError

    def read_ground_truth(self, csv: Path, images: Path) -> ImageTable:
        """A CSV in this data set's ground-truth format with its images in ``images`` (for ``extra_train_csv``)."""
        raise DataError(f"{type(self).__name__} does not take extra training images (extra_train_csv="
                        f"'{self.extra_train_csv}'); remove the option or merge the images into the data set.")

    def metadata(self, split: str) -> pd.DataFrame:
        """Per-image attributes of ``split`` for the subgroup metrics (:mod:`dermlab.stats.subgroups`,
        :class:`callbacks.subgroups.SubgroupMetrics`): a frame indexed by image id (the split's images, in order),
        one text column per attribute (``sex``, ``age_band``, ``localization``), ``unknown`` where a value is missing.
        A data set whose files carry no such metadata (the default) has no columns."""
        return pd.DataFrame(index=pd.Index(self.table(split).ids, name="image_id"))

    def lesion_masks(self, split: str) -> dict[str, Path]:
        """The lesion mask file of each image of ``split`` that the data set ships one for (the skin-tone proxy
        leaves the lesion out by it, :mod:`dermlab.stats.skin_tone`); none by default."""
        return {}

    def submission(self, ids: list[str], probabilities: np.ndarray) -> pd.DataFrame:
        """The submission table: ``image`` plus one probability column per class (official layouts override)."""
        frame = pd.DataFrame({"image": ids})
        for index, name in enumerate(self.class_names):
            frame[name] = probabilities[:, index]
        return frame

    # --- shared behaviour ---------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def raw_table(self, split: str) -> ImageTable | None:
        """``split`` as its files list it, before ``on_bad_image`` screening (read once); ``extra`` is the
        ``extra_train_csv`` images (``None`` without one). Split schemes draw from these, so a bad image never
        moves another between splits."""
        if split not in self._raw:
            if split == "test" and self.cross_test is not None:
                self._raw[split] = self.cross_test.table(screened=False)
            elif split == "extra":
                self._raw[split] = None if self.extra_train_csv is None else self.read_ground_truth(
                    self.extra_train_csv, self.extra_train_images or self.extra_train_csv.parent)
            else:
                try:
                    self._raw[split] = self.read_split(split)
                except DataError as error:  # a file missing: say which data set the folder holds, if another
                    note = wrong_folder_note(self.root, self.config_name)
                    if not note or note in str(error):
                        raise
                    raise DataError(f"{error}{note}") from None
        return self._raw[split]

    @property
    def config_name(self) -> str | None:
        """This datamodule's data-set config name (``isic2017``, ``isic2018_task1``, ...; ``DATAMODULES``), if any."""
        from datamodules import DATAMODULES

        return next((name for name, (cls, fixed) in DATAMODULES.items()
                     if type(self) is cls and all(getattr(self, k, None) == v for k, v in fixed.items())), None)

    def table(self, split: str) -> ImageTable:
        """The validated table of ``split`` (``train`` includes the extra training images), read once."""
        if split == "test" and self.cross_test is not None and split not in self.tables:
            self.tables[split] = self.cross_test.table(screened=True)
        if split not in self.tables:
            table = self.raw_table(split)
            if split == "train" and self.extra_train_csv is not None:
                table = table.concat(self.extra_training_images(table))
            self.tables[split] = self.screen(table)
        return self.tables[split]

    def extra_training_images(self, train: ImageTable) -> ImageTable:
        """The ``extra_train_csv`` images, refused where one is already a training, validation or test image."""
        extra = self.raw_table("extra")
        for split, ids in (("train", train.ids), *((s, self.table(s).ids) for s in ("val", "test"))):
            clash = sorted(set(extra.ids) & set(ids))
            if clash:
                raise DataError(f"{len(clash)} image(s) of extra_train_csv '{self.extra_train_csv}' are already in the "
                                f"{split} split (e.g. {clash[0]}); remove them from the CSV"
                                + (" — evaluating on training images would inflate the results." if split != "train"
                                   else "."))
        return extra

    def screen(self, table: ImageTable) -> ImageTable:
        """Apply ``on_bad_image`` to images that are missing, empty (0 bytes) or lack a listed mask (always checked,
        at set-up: one ``stat`` per file) or are unreadable (decoded at set-up in skip mode only; in error mode an
        image that cannot be decoded stops the run when its batch loads, naming the file).

        Absent images are reported once for the whole data set (:meth:`absent_report`: how many of all listed
        images are absent, per split), as one error (``error``) or one warning (``skip``, first screened split).
        """
        if table.screened:
            return table
        table.screened = True
        sizes = [file_size(p) for p in table.paths]  # one stat per image
        missing = [i for i, size in enumerate(sizes) if size is None]
        empty = [i for i, size in enumerate(sizes) if size == 0]
        if empty and self.on_bad_image == "error":
            raise DataError(f"{len(empty)} image(s) listed in '{table.source}' are empty (0 bytes), e.g. "
                            f"'{table.paths[empty[0]]}', as after a download or copy that stopped before writing "
                            "them; re-download them, remove those rows, or set on_bad_image: skip.")
        if missing and self.on_bad_image == "error":
            absent, listed, sources, details = self.absent_report(table, missing)
            raise DataError(f"{absent:,} image(s) listed in {sources} are missing (of {listed:,} listed; "
                            f"{details}), as after an incomplete download; re-download the images, remove those "
                            f"rows, or set on_bad_image: skip to go on with the {listed - absent:,} present ones.")
        if missing and not self._absent_reported:
            self._absent_reported = True
            absent, listed, sources, details = self.absent_report(table, missing)
            log.warning("on_bad_image=skip: left out %s of %s images listed in %s, as they are missing (%s); going on "
                        "with the %s present ones.", f"{absent:,}", f"{listed:,}", sources, details,
                        f"{listed - absent:,}")
        lacking = [i for i, row in enumerate(table.masks or []) if any(not m.is_file() for m in row)]
        if lacking and self.on_bad_image == "error":
            absent = [m for i in lacking for m in table.masks[i] if not m.is_file()]
            raise DataError(f"{len(absent)} mask(s) are missing from '{absent[0].parent}' (e.g. {absent[0].name}) "
                            f"for images listed in '{table.source}'; every image needs its mask(s): re-download "
                            "them, remove those images, or set on_bad_image: skip.")
        bad = set(missing) | set(lacking)
        unreadable = set()
        if self.on_bad_image == "skip":
            for i, path in enumerate(table.paths):
                if i not in bad:
                    try:
                        load_rgb(path)
                    except DataError:
                        unreadable.add(i)
        if not bad | unreadable:
            return table
        other = sorted((set(lacking) | unreadable) - set(missing))
        if other:
            names = [table.ids[i] for i in other]
            log.warning("on_bad_image=skip: left out %d of %d images of '%s' that lack a mask or cannot be decoded: "
                        "%s", len(names), len(table), table.source, shortlist(names))
        bad |= unreadable
        return table.subset([i for i in range(len(table)) if i not in bad])

    def absent_report(self, table: ImageTable, missing: list[int]) -> tuple[int, int, str, str]:
        """The absent images of the whole data set, as after a partial download: ``(absent, listed, sources,
        details)``, ``details`` giving the count per split and the first few of ``table``.

        ``table`` is the split being screened and ``missing`` its absent rows; every split (and the
        ``extra_train_csv`` images) is counted from its files as listed; a split that cannot be read is left out.
        """
        counts: dict[str, tuple[int, int]] = {}
        sources: list[str] = []
        for split in (*SPLITS, "extra"):
            try:
                raw = self.raw_table(split)
            except DataError:
                continue
            if raw is None or not len(raw):
                continue
            absent = sum(not p.is_file() for p in raw.paths)
            counts[split] = (absent, len(raw))
            if absent and repr(str(raw.source)) not in sources:
                sources.append(repr(str(raw.source)))
        absent, listed = sum(c[0] for c in counts.values()), sum(c[1] for c in counts.values())
        if absent < len(missing):  # the screened table is not one of the splits (e.g. a pool): count it alone
            counts, absent, listed, sources = {}, len(missing), len(table), [repr(str(table.source))]
        per_split = ", ".join(f"{split} {a:,} of {n:,}" for split, (a, n) in counts.items())
        shown = ", ".join(table.paths[i].name for i in missing[:3])
        return absent, listed, ", ".join(sources), (f"{'absent per split: ' + per_split + '; ' if per_split else ''}"
                                                    f"e.g. {shown} in '{table.paths[missing[0]].parent}'")

    @property
    def test_mapping(self):
        """The :class:`~datamodules.taxonomies.ClassMapping` the test split is scored through (``test_on``), else
        None (the test split has this data set's classes)."""
        return None if self.cross_test is None else self.cross_test.mapping

    def split_class_names(self, split: str) -> tuple[str, ...]:
        """The class names of ``split``'s labels: the evaluation classes for a ``test_on`` test split."""
        if split == "test" and self.test_mapping is not None:
            return tuple(self.test_mapping.classes)
        return tuple(self.class_names)

    def split_source(self, split: str) -> SkinDataModule:
        """The data module whose files hold ``split``'s images (for per-image metadata and lesion masks): the
        ``test_on`` target for the test split, else this one."""
        return self.test_on if split == "test" and self.test_on is not None else self

    @property
    def class_counts(self) -> torch.Tensor:
        """Training images per class, for class-weighted losses and samplers."""
        return torch.bincount(torch.as_tensor(self.table("train").labels), minlength=self.num_classes)

    def follow(self, model) -> None:
        """Normalise images with ``model``'s input statistics (its ``input_normalisation``: the backbone's timm
        ``pretrained_cfg`` mean / std, :mod:`lightning_modules.normalisation`); a model without one keeps ImageNet's."""
        self.normalisation = getattr(model, "input_normalisation", None) or IMAGENET

    def setup(self, stage: str | None = None) -> None:
        trainer = getattr(self, "trainer", None)
        if trainer is not None and trainer.lightning_module is not None:
            self.follow(trainer.lightning_module)
        needed = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",),
                  "predict": (self.predict_split,)}.get(stage or "", SPLITS)
        for split in needed:
            self.table(split)
        if self.split_audit is None:
            self.split_audit = self.audit(needed=tuple(dict.fromkeys(
                (*needed, "test") if self.cross_test is not None else needed)))  # test_on: audited before training
            if self.cross_test is not None and self.cross_test.dropped_ids:
                for split in ("train", "val"):
                    table = self.table(split)
                    self.tables[split] = table.subset([k for k, i in enumerate(table.ids)
                                                       if i not in self.cross_test.dropped_ids])
            self.enforce(self.split_audit)
        self.write_split_files(needed)

    # --- the split audit ----------------------------------------------------------------
    def audit(self, needed=SPLITS, screened: bool = True) -> SplitAudit:
        """Audit train / val / test / extra for shared lesions, shared ids and identical images.

        ``screened=False`` audits the splits as their files list them, images present or not (``dermlab audit``
        on a metadata-only copy); a split outside ``needed`` that cannot be read is reported as unavailable.
        """
        tables: dict[str, ImageTable | None] = {}
        unavailable: dict[str, str] = {}
        for split in SPLITS:
            try:
                tables[split] = self.table(split) if screened else self.raw_table(split)
            except DataError as error:
                if split in needed:
                    raise
                unavailable[split] = clean_message(error)
        if screened and tables.get("train") is not None and self.extra_train_csv is not None:
            train, extra_ids = tables["train"], set(self.raw_table("extra").ids)
            is_extra = np.array([i in extra_ids for i in train.ids])
            tables["train"], tables["extra"] = train.subset(np.flatnonzero(~is_extra)), train.subset(
                np.flatnonzero(is_extra))
        elif not screened:
            tables["extra"] = self.raw_table("extra")
        if self.duplicates_csv is not None and not self.duplicates_csv.is_file():
            raise DataError(f"duplicates_csv '{self.duplicates_csv}' does not exist; give the duplicates list "
                            "(ISIC 2020 layout image_name_1,image_name_2) or remove the option.")
        known = self.duplicates_csv or self.root / "ISIC_2020_Training_Duplicates.csv"
        store = FingerprintStore(self.cache_dir) if self.audit_pixels or self.near_duplicates else None

        def run(tables: dict) -> SplitAudit:
            return audit_splits(tables, store, known if known.is_file() else None, exact=self.audit_pixels,
                                near_duplicates=self.near_duplicates, unavailable=unavailable)

        audit = run(tables)
        return audit if self.cross_test is None else self.cross_test.settle(tables, audit, run)

    def enforce(self, audit: SplitAudit) -> None:
        """Stop (``leakage: error``) or warn (``warn``) on a leak; see :func:`datamodules.audit.enforce`."""
        where = f"{type(self).__name__} at '{self.root}'"
        if self.cross_test is not None:
            where += (f" tested on {self.cross_test.name} (test_on_overlap: {self.cross_test.overlap}; drop leaves "
                      "training / validation images that are test images out of training)")
        enforce(audit, self.leakage, where)

    def write_split_files(self, splits) -> None:
        """``<run folder>/splits/<split>.csv``: the exact images of each split of this run, and ``audit.json``."""
        trainer = getattr(self, "trainer", None)
        if trainer is None or not trainer.is_global_zero or trainer.default_root_dir is None:
            return
        folder = Path(trainer.default_root_dir) / "splits"
        folder.mkdir(parents=True, exist_ok=True)
        for split in splits:
            self.table(split).frame(self.split_class_names(split)).to_csv(folder / f"{split}.csv", index=False)
        if self.split_audit is not None:
            (folder / "audit.json").write_text(json.dumps(self.split_audit.to_json(), indent=1) + "\n")

    def dataset(self, split: str, augment: bool | None = None, views: int | None = None) -> ImageTableDataset:
        """The images of ``split``; augmented by default only for ``train`` (``augment=False``: evaluation
        pipeline, ``eval_views`` views per image unless ``views`` says otherwise; ``views=1``: one whole image, no
        crops)."""
        augment = split == "train" if augment is None else augment
        transform = build_transforms(self.train_transforms if augment else self.eval_transforms, self.image_size,
                                     train=augment, resize_to=self.resize_to, normalisation=self.normalisation)
        crops = 0 if views == 1 else self.train_crops if augment else self.eval_crops  # views=1: one whole image
        views = 1 if augment else (views or self.eval_views)
        return ImageTableDataset(self.table(split), transform, self.cache,
                                 repeats=self.train_repeats if augment else 1, views=views, crops=crops,
                                 crop_size=self.crop_size, seed=run_seed(self.seed),
                                 crop_positions=self.train_crop_positions if augment else "ordered")

    def _loader(self, split: str, **kwargs) -> DataLoader:
        workers = self.loader_workers()
        return DataLoader(self.dataset(split), batch_size=self.batch_size, num_workers=workers,
                          persistent_workers=workers > 0,
                          pin_memory=torch.cuda.is_available(), **kwargs)

    def loader_workers(self) -> int:
        """DataLoader worker processes: ``num_workers``, or when that is None the machine's default
        (:func:`dermlab.runtime.resources.default_workers`)."""
        if self.num_workers is not None:
            return self.num_workers
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return default_workers(on_cpu=not torch.cuda.is_available())
        return default_workers(on_cpu=isinstance(trainer.accelerator, CPUAccelerator), processes=trainer.num_devices)

    def train_dataloader(self) -> DataLoader:
        """The training images (each ``train_repeats`` times) in the order ``sampling`` asks for: seeded random,
        oversampled or class-balanced batches, drawn anew each epoch from the run's seed (a resumed run starts with
        the order of the epoch it resumes at)."""
        labels = np.tile(self.table("train").labels, self.train_repeats)
        world = getattr(getattr(self, "trainer", None), "world_size", 1) or 1
        seed = run_seed(self.seed)  # the run's seed: a new seed_everything gives a new order
        if self.sampling == "balanced":
            sampler = BalancedBatchSampler(labels, self.batch_size, world_size=world, seed=seed)
        elif self.sampling == "oversample":
            sampler = OversamplingSampler(labels, seed=seed)
        else:
            sampler = SeededRandomSampler(len(labels), seed=seed)
        # Lightning starts the first iterator (and its workers' prefetching) before its own set_epoch: a resumed
        # run must draw its first epoch's order for the epoch it resumes at, not for epoch 0.
        trainer = getattr(self, "trainer", None)
        sampler.set_epoch(trainer.fit_loop.epoch_progress.current.processed if trainer is not None else 0)
        return self._loader("train", sampler=sampler, drop_last=self.sampling == "balanced"
                            or lone_last_image(len(labels), self.batch_size, world, self.table("train").source,
                                               training=trainer is not None))

    def val_dataloader(self) -> DataLoader | list:
        """The validation images; none (``[]``: Lightning then skips validation) for a scheme without them."""
        return self._loader("val", shuffle=False) if len(self.table("val")) else []

    def test_dataloader(self) -> DataLoader:
        """The test images, in order."""
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        """The images of ``predict_split``, in order."""
        return self._loader(self.predict_split, shuffle=False)


def instantiate_datamodule(entry: dict) -> SkinDataModule:
    """A data module from a ``{class_path, init_args}`` mapping (``class_path`` a dotted path or a name in
    :mod:`datamodules`)."""
    import importlib

    path = str(entry.get("class_path", ""))
    module, _, name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module or "datamodules"), name)
    except (ImportError, AttributeError):
        raise DataError(f"test_on: class_path {path!r} names no data module; e.g. datamodules.HAM10000DataModule."
                        ) from None
    return cls(**dict(entry.get("init_args") or {}))
