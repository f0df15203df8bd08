"""Testing across data sets: train and validate on one data set, test on another's test split.

A data module with ``test_on`` (another data module, :class:`~datamodules.base.SkinDataModule`) trains and
validates on its own splits and serves the *target*'s test split as its ``test`` split::

    data:
      class_path: datamodules.HAM10000DataModule
      init_args:
        root: data/ham10000
        test_on:                                  # the one config key (experiments/cross_dataset/*.yaml)
          class_path: datamodules.ISIC2018Task3DataModule
          init_args: {root: data/isic2018}

The target only reads its files: its reading options (``root``, ``split``, ``task``, ``test_set``,
``on_bad_image``) count, its pipeline options do not — the test images go through the source's evaluation
pipeline (size, crops, views, normalisation, cache), as the trained model expects.

:class:`CrossTest` does three things:

* **Labels**: the target's test labels become the evaluation classes of the
  :class:`~datamodules.taxonomies.ClassMapping` between the two class sets (a pair without one is refused, listing
  the known ones); images whose class has no evaluation class are left out and counted per class. The model merges
  its probabilities onto the same classes (:meth:`lightning_modules.base.LesionClassifier.use_test_mapping`).
* **Audit**: the split audit (:mod:`datamodules.audit`) sees the target's test images in the ``test`` role, so it
  compares them with the source's training and validation images by image id (``_downsampled`` suffixes of
  ISIC 2019 aside, :func:`~datamodules.audit.canonical_id`), by lesion id where both sides have them, by exact
  pixels and by a published duplicates list — ISIC 2019 holds all of HAM10000 and of the ISIC 2017 training set.
* **Overlap**: ``test_on_overlap: drop`` (default) leaves every training or validation image that is a target test
  image, shares its lesion or is pixel-identical to one out of training and validation, logs how many and which,
  and records the counts in ``splits/audit.json`` (``cross_test.dropped``); the audit is then run again on what is
  left. ``keep`` leaves them in, and the data module's ``leakage`` policy decides (``error``: stop, naming the
  pairs; ``warn``: go on, recorded).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from datamodules.audit import SHOWN, SplitAudit, canonical_id
from datamodules.taxonomies import ClassMapping, mapping_between
from dermlab.errors import DataError

if TYPE_CHECKING:
    from datamodules.datasets.reader import SplitReader
    from datamodules.datasets.table import ImageTable

log = logging.getLogger(__name__)

OVERLAP_POLICIES = ("drop", "keep")
TRAINING_ROLES = ("train", "val", "extra")  # the audit's roles that train or select


class CrossTest:
    """The ``target`` data module's test split as seen by a model trained on ``source``.

    Args:
        source: the data module that trains and validates (the one with ``test_on``).
        target: the data module whose test split is served (only its files are read).
        overlap: ``drop`` or ``keep``, the ``test_on_overlap`` policy (see the module).

    Raises:
        ValueError: an unknown ``overlap``.
        DataError: ``target`` has a ``test_on`` of its own.
    """

    def __init__(self, source: SplitReader, target: SplitReader, overlap: str = "drop") -> None:
        if overlap not in OVERLAP_POLICIES:
            raise ValueError(f"test_on_overlap must be one of {OVERLAP_POLICIES}, got {overlap!r}")
        if getattr(target, "test_on", None) is not None:
            raise DataError(f"test_on names {type(target).__name__}, which has a test_on of its own; give the data "
                            "module whose test split is wanted directly.")
        self.source, self.target, self.overlap = source, target, overlap
        self._mapping: ClassMapping | None = None
        self.left_out: dict[str, int] = {}
        self.dropped: dict = {}
        self.dropped_ids: set[str] = set()

    @property
    def name(self) -> str:
        """How messages name the target data module, by its class and root:
        ``ISIC2018Task3DataModule at 'data/isic2018'``."""
        return f"{type(self.target).__name__} at '{self.target.root}'"

    @property
    def mapping(self) -> ClassMapping:
        """The class mapping source → target, resolved on first use (some data modules name their classes in
        ``__init__`` after the base class ran)."""
        if self._mapping is None:
            self._mapping = mapping_between(self.source.class_names, self.target.class_names,
                                            getattr(self.target, "taxonomy_name", None))
        return self._mapping

    def table(self, screened: bool = True) -> ImageTable:
        """The target's test split with evaluation-class labels, without the images whose class has none.

        ``screened=False``: as its files list it (the target's ``raw_table``), for ``dermlab audit``.

        Raises:
            DataError: the target's test split has masks (a segmentation task) or images without a label.
        """
        raw = self.target.table("test") if screened else self.target.raw_table("test")
        if raw.masks is not None:
            raise DataError(f"test_on: the test split of {self.name} is a segmentation task ('{raw.source}'); "
                            "testing across data sets is for classification.")
        if (raw.labels < 0).any():
            raise DataError(f"test_on: {int((raw.labels < 0).sum())} test image(s) of {self.name} have no label "
                            f"('{raw.source}'); testing across data sets needs the target's test ground truth.")
        labels = self.mapping.target_labels(raw.labels)
        keep = np.flatnonzero(labels >= 0)
        names = self.target.class_names
        self.left_out = dict(sorted(Counter(names[i] for i in raw.labels[labels < 0]).items()))
        if self.left_out:
            log.info("test_on %s: left out %d of %d test images whose class has no evaluation class under %s (%s)",
                     self.name, len(raw) - len(keep), len(raw), self.mapping.name,
                     ", ".join(f"{k} {v}" for k, v in self.left_out.items()))
        table = raw.subset(keep)
        table.labels = labels[keep]
        return table

    def settle(self, tables: dict, audit: SplitAudit, rerun: Callable[[dict], SplitAudit]) -> SplitAudit:
        """Apply the overlap policy to an audit of ``tables`` (role → table, ``test`` = the target's test images):
        with ``drop``, the overlapping training / validation / extra images are left out of the tables (which
        ``rerun`` audits again) and counted; the returned audit carries :meth:`describe` as ``cross_test``."""
        found = overlap(tables, audit)
        self.dropped, self.dropped_ids = {}, set()
        if found and self.overlap == "drop":
            self.dropped_ids = {i for reasons in found.values() for ids in reasons.values() for i in ids}
            counts = {role: {reason: len(ids) for reason, ids in reasons.items()} for role, reasons in found.items()}
            examples = sorted(self.dropped_ids)[:SHOWN]
            self.dropped = {"counts": counts, "images": len(self.dropped_ids), "examples": examples}
            log.warning("test_on %s: left out %d training / validation image(s) of %s that are test images of the "
                        "target, share a lesion with one or are pixel-identical to one (%s), e.g. %s; "
                        "splits/audit.json records them (test_on_overlap: keep would leave them in)", self.name,
                        len(self.dropped_ids), type(self.source).__name__,
                        "; ".join(f"{role}: " + ", ".join(f"{n} by {reason}" for reason, n in c.items())
                                  for role, c in counts.items()), ", ".join(examples))
            audit = rerun(without(tables, self.dropped_ids))
        audit.cross_test = self.describe(len(tables["test"]) if tables.get("test") is not None else 0)
        return audit

    def describe(self, images: int) -> dict:
        """What ``splits/audit.json`` and the grid's ``result.json`` record about the test set."""
        return {"data_module": type(self.target).__name__, "root": str(self.target.root),
                "mapping": self.mapping.to_json(), "images": images, "left_out": self.left_out,
                "overlap": self.overlap, "dropped": self.dropped}


def overlap(tables: dict, audit: SplitAudit) -> dict[str, dict[str, list[str]]]:
    """The images of the training roles (train, val, extra) that overlap the ``test`` table: role → reason →
    ids, the reason being ``image`` (the same canonical id), ``lesion`` (a shared lesion id) or ``pixels``
    (identical pixels or a published duplicate pair, from the audit's ``pairs``); each image under its first reason.
    """
    test = tables.get("test")
    if test is None or not len(test):
        return {}
    test_ids = {canonical_id(i) for i in test.ids}
    test_lesions = {g for g in test.groups or [] if g}
    copies = set()
    for (a, b), roles in zip(audit.pairs, audit.pair_splits, strict=True):
        first, second = roles.split("/")
        if "test" in (first, second):
            copies.add(a if second == "test" else b)
    found: dict[str, dict[str, list[str]]] = {}
    for role in TRAINING_ROLES:
        table = tables.get(role)
        if table is None:
            continue
        groups = table.groups or [""] * len(table)
        for image_id, lesion in zip(table.ids, groups, strict=True):
            reason = ("image" if canonical_id(image_id) in test_ids else "lesion" if lesion and lesion in test_lesions
                      else "pixels" if image_id in copies else None)
            if reason:
                found.setdefault(role, {}).setdefault(reason, []).append(image_id)
    return found


def without(tables: dict, ids: set[str]) -> dict:
    """``tables`` with the images ``ids`` left out of every role but ``test``."""
    return {role: table if table is None or role == "test" else
            table.subset([k for k, i in enumerate(table.ids) if i not in ids]) for role, table in tables.items()}
