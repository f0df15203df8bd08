"""Shared LightningDataModule: a data set's reader plus set-up, transforms, samplers and loaders.

Each data set's reader (:mod:`datamodules.datasets`, free of Lightning) maps its official folder and CSV layout to
an :class:`~datamodules.datasets.table.ImageTable` per split and names its classes; this base adds what every data
module shares: the split audit at set-up, the preprocessing cache, class counts, imbalance samplers, split CSVs in
the run folder and the DataLoaders.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import lightning.pytorch as L
import numpy as np
import torch
from lightning.pytorch.accelerators import CPUAccelerator
from torch.utils.data import DataLoader
from typing_extensions import override

from datamodules.audit import SplitAudit, audit_splits, enforce
from datamodules.cache import CacheFormat, ImageCache
from datamodules.cross import CrossTest
from datamodules.datasets.image_dataset import ImageTableDataset
from datamodules.datasets.reader import SPLITS, SplitReader
from datamodules.datasets.table import ImageTable
from datamodules.fingerprints import FingerprintStore
from datamodules.metadata_input import PatientMetadataInput
from datamodules.samplers import BalancedBatchSampler, OversamplingSampler, SeededRandomSampler
from datamodules.transforms import IMAGENET, Normalisation, TransformSpec, build_transforms, self_contained
from datamodules.views import ImageViews
from dermlab.errors import DataError, clean_message
from dermlab.runtime.resources import default_workers
from dermlab.runtime.seeding import run_seed

if TYPE_CHECKING:
    from datamodules.taxonomies import ClassMapping

log = logging.getLogger(__name__)


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


def warn_if_cache_too_small(max_side: int, needed: int) -> bool:
    """Warn (and return True) when cached copies of longer side ``max_side`` px are smaller than the ``needed``
    side (px) the pipeline resizes or crops to, so that every image would be enlarged after being shrunk."""
    if max_side >= needed:
        return False
    log.warning("max_side %d is smaller than the %d px the pipeline asks for (image_size, crop_size or resize_to): "
                "cached copies would be enlarged again; set max_side to at least %d.", max_side, needed, needed)
    return True


class SkinDataModule(ImageViews, PatientMetadataInput, SplitReader, L.LightningDataModule):
    """Base for every data set of the suite: the data set's reader (:class:`~datamodules.datasets.reader.SplitReader`,
    free of Lightning) plus what Lightning needs: set-up with the split audit, transforms, the preprocessing
    cache, samplers and DataLoaders.

    Each data set's module subclasses its reader and this class (``ISIC2017DataModule(ISIC2017Reader,
    SkinDataModule)``), so its arguments are the reader's (``root``, ``seed``, ``on_bad_image``,
    ``extra_train_csv``, ``extra_train_images``, ``duplicates_csv`` and the data set's own), the papers' views and
    crops per image (:class:`~datamodules.views.ImageViews`: ``train_repeats``, ``eval_views``, ``train_crops``,
    ``eval_crops``, ``train_crop_positions``, ``crop_size``, ``resize_to``), the patient fields beside each image
    (:class:`~datamodules.metadata_input.PatientMetadataInput`: ``metadata_fields``) and these.

    Args:
        root: folder holding the data set exactly as downloaded (see the docs page per data set).
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
        cache_dir: where the preprocessing cache lives (default ``~/.cache/dermlab``).
        max_side: if set, images are read from the cache, resized so the longer side is at most
            this many pixels (made on first use, or beforehand with ``dermlab prepare``); the same
            resize and augmentation then run on the cached copy. It should be at least the largest side the
            pipeline asks for (``image_size``, ``crop_size``, ``resize_to``), else a warning says that every
            image is enlarged again (512 suits 224–299 px inputs).
        cache_format: ``npy`` (default: raw uint8 arrays, no decoding, 0.59 MB a 512×384 image) or ``png``
            (lossless, about half the disk, 8–13 ms more per image read); see :mod:`datamodules.cache`.
        leakage: what set-up does when the split audit (:mod:`datamodules.audit`) finds a test or validation
            image, lesion or pixel-identical copy on another side: ``error`` (default) stops, naming the first
            pairs and the count; ``warn`` logs it and goes on (e.g. to rerun a paper's own leaky protocol; the
            run's ``splits/audit.json`` and its grid report then say so).
        audit_pixels: also compare exact pixel fingerprints across splits (decoded once, then read from the
            cache folder); ``false`` checks ids and lesion ids only.
        near_duplicates: also compare perceptual hashes and report near-duplicate pairs (off by default).
        test_on: another data module (``class_path`` / ``init_args``) whose test split replaces this one's: train and
            validate here, test there (:mod:`datamodules.cross`). Its labels map onto the evaluation classes of
            the two class sets (:mod:`datamodules.taxonomies`; a pair without a mapping is refused), the split audit
            compares its test images with this data set's training and validation images, and only its reading
            options count (the images go through this module's evaluation pipeline).
        test_on_overlap: what set-up does with training / validation images that are ``test_on`` test images (same
            id, shared lesion or identical pixels): ``drop`` (default) leaves them out, logged and counted in
            ``splits/audit.json``; ``keep`` leaves them in for the ``leakage`` policy to judge.
    """

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
        cache_dir: str | None = None,
        max_side: int | None = None,
        cache_format: CacheFormat = "npy",
        leakage: Literal["error", "warn"] = "error",
        audit_pixels: bool = True,
        near_duplicates: bool = False,
        test_on: SkinDataModule | None = None,
        test_on_overlap: Literal["drop", "keep"] = "drop",
        **kwargs: Any,
    ) -> None:
        super().__init__(root, **kwargs)  # the views (ImageViews) and the reader's arguments (SplitReader and its own)
        self.crop_size = self.crop_size or image_size
        self.image_size, self.batch_size, self.num_workers = image_size, batch_size, num_workers
        self.train_transforms, self.eval_transforms = train_transforms, eval_transforms
        if predict_split not in SPLITS:
            raise ValueError(f"predict_split must be one of {SPLITS}, got {predict_split!r}")
        if sampling not in ("none", "oversample", "balanced"):
            raise ValueError(f"sampling={sampling!r} is not a known choice (none, oversample or balanced)")
        self.predict_split, self.sampling = predict_split, sampling
        self.cache = ImageCache(cache_dir, max_side, cache_format) if max_side else None
        if max_side:
            warn_if_cache_too_small(max_side, max(image_size, self.crop_size, *(self.resize_to or ())))
        if leakage not in ("error", "warn"):
            raise ValueError(f"leakage must be 'error' or 'warn', got {leakage!r}")
        self.leakage, self.audit_pixels, self.near_duplicates = leakage, audit_pixels, near_duplicates
        self.cache_dir = cache_dir
        self.normalisation: Normalisation = IMAGENET  # the attached model's, from setup() on (see follow())
        self.split_audit: SplitAudit | None = None
        if test_on_overlap not in ("drop", "keep"):
            raise ValueError(f"test_on_overlap must be 'drop' or 'keep', got {test_on_overlap!r}")
        if isinstance(test_on, dict):  # a class_path / init_args entry not instantiated by the CLI (dermlab audit)
            test_on = instantiate_datamodule(test_on)
        self.test_on = test_on
        self.cross_test = None if test_on is None else CrossTest(self, test_on, test_on_overlap)

    # --- the test split of another data set (test_on) ----------------------------------------
    @override
    def raw_table(self, split: str) -> ImageTable | None:
        if split == "test" and self.cross_test is not None:
            if split not in self._raw:
                self._raw[split] = self.cross_test.table(screened=False)
            return self._raw[split]
        return super().raw_table(split)

    @override
    def table(self, split: str) -> ImageTable:
        if split == "test" and self.cross_test is not None and split not in self.tables:
            self.tables[split] = self.cross_test.table(screened=True)
        return super().table(split)

    @classmethod
    @override
    def config_names(cls) -> dict[str, tuple[type, dict[str, object]]]:
        """The data modules' registry (``datamodules.DATAMODULES``)."""
        from datamodules import DATAMODULES

        return DATAMODULES

    @property
    def test_mapping(self) -> ClassMapping | None:
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

    def follow(self, model: object) -> None:
        """Normalise images with ``model``'s input statistics (its ``input_normalisation``: the backbone's timm
        ``pretrained_cfg`` mean / std, :mod:`lightning_modules.normalisation`); a model without one keeps ImageNet's.
        A model trained with patient metadata gives its encoding
        (:meth:`~datamodules.metadata_input.PatientMetadataInput.follow_metadata`)."""
        self.normalisation = getattr(model, "input_normalisation", None) or IMAGENET
        self.follow_metadata(model)

    @override
    def setup(self, stage: str | None = None) -> None:
        """Read and screen the splits ``stage`` needs, run the split audit once (stopping on a leak unless
        ``leakage: warn``) and write the split CSVs to the run folder; follows the attached model's normalisation."""
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
        # a test_on target lacking a metadata field is refused at fit, before anything trains
        self.check_metadata(tuple(dict.fromkeys((*needed, "test"))) if self.cross_test is not None else needed)
        self.write_split_files(needed)

    # --- the split audit ----------------------------------------------------------------
    def audit(self, needed: Sequence[str] = SPLITS, screened: bool = True) -> SplitAudit:
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

    def write_split_files(self, splits: Iterable[str]) -> None:
        """``<run folder>/splits/<split>.csv``: the exact images of each split of this run (with the raw
        ``meta_<field>`` values of a metadata run), ``audit.json`` and, for a metadata run, ``metadata.json``."""
        trainer = getattr(self, "trainer", None)
        if trainer is None or not trainer.is_global_zero or trainer.default_root_dir is None:
            return
        folder = Path(trainer.default_root_dir) / "splits"
        folder.mkdir(parents=True, exist_ok=True)
        for split in splits:
            frame = self.table(split).frame(self.split_class_names(split))
            for name, values in self.metadata_columns(split).items():
                frame[name] = values
            frame.to_csv(folder / f"{split}.csv", index=False)
        self.write_metadata_file(folder)
        if self.split_audit is not None:
            (folder / "audit.json").write_text(json.dumps(self.split_audit.to_json(), indent=1) + "\n")

    def dataset(self, split: str, augment: bool | None = None, views: int | None = None) -> ImageTableDataset:
        """The images of ``split``; augmented by default only for ``train`` (``augment=False``: evaluation
        pipeline, ``eval_views`` views per image unless ``views`` says otherwise; ``views=1``: one whole image, no
        crops). The evaluation pipeline's random draws are keyed by each image's name (``sample_key: image``), so an
        exported package gives an image the views its test gave it."""
        augment = split == "train" if augment is None else augment
        transform = build_transforms(self.train_transforms if augment else self.eval_transforms, self.image_size,
                                     train=augment, resize_to=self.resize_to, normalisation=self.normalisation)
        return ImageTableDataset(self.table(split), transform, self.cache, seed=run_seed(self.seed),
                                 sample_key="position" if augment else "image", metadata=self.encoded_metadata(split),
                                 **self.views_of(augment, views))

    def evaluation_preprocessing(self) -> dict[str, Any]:
        """What turns an image file into an evaluation input, as JSON values: ``image_size``, ``eval_transforms``
        (a yaml file's entries read in), ``resize_to``, ``max_side`` (the cache's first resize), ``mean`` / ``std``,
        ``views``, ``crops``, ``crop_size``, ``crop_positions`` and ``seed``. Recorded beside each test's
        predictions and copied into an exported model package (:mod:`lightning_modules.nets.package`)."""
        views = self.views_of(augment=False)
        return {"image_size": self.image_size, "eval_transforms": self_contained(self.eval_transforms),
                "resize_to": list(self.resize_to) if self.resize_to else None,
                "max_side": self.cache.max_side if self.cache is not None else None,
                "mean": list(self.normalisation.mean), "std": list(self.normalisation.std),
                "views": views["views"], "crops": views["crops"], "crop_size": views["crop_size"] or self.image_size,
                "crop_positions": views["crop_positions"], "seed": run_seed(self.seed)}

    def _loader(self, split: str, **kwargs: Any) -> DataLoader:
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
