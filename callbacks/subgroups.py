"""Subgroup metrics after ``trainer.test`` of a classifier: AUC, sensitivity and specificity per sex, age band, body
site and skin-tone category, each with its stratified bootstrap interval (:mod:`dermlab.stats.subgroups`).

Writes, under the run folder (``trainer.default_root_dir``):

* ``subgroups_test.csv``: one row per group (``attribute,group,n,positives,auc,auc_low,auc_high,sensitivity,...,
  note``), ``all / all`` first;
* ``ita_test.csv``: ``image,ita,ita_category,skin_pixels,lesion,no_yellow``, the skin-tone proxy of every test image
  (:mod:`dermlab.stats.skin_tone`; ``lesion``: ``mask`` where the data set ships a lesion mask, else ``otsu+ellipse``);
* ``plots/test_subgroups.png``: the forest plot (point and interval per group, group size in the label);
* where the test images have Fitzpatrick labels (DDI, Fitzpatrick17k, PAD-UFES-20: the ``fitzpatrick_group``
  attribute, :mod:`dermlab.files.skin_type`): ``skin_type_test.csv``, the gap between the lightest and darkest
  groups per metric with its bootstrap interval and permutation p-value (:func:`dermlab.stats.gaps.skin_type_gaps`),
  and ``skin_type_agreement_test.json``, the ITA proxy against the label (:mod:`dermlab.stats.skin_type_agreement`);
  the per-group values and gaps are also :attr:`SubgroupMetrics.test_scores` (``skin_type/…``), which a grid
  cell adds to its ``result.json`` metrics.

The attributes come from the datamodule's ``metadata("test")`` hook (HAM10000, the ISIC-archive sample, ISIC 2017
with its metadata CSVs, ISIC 2018 task 3 truths in the HAM10000 layout; none elsewhere), plus ``ita_category``.

The probabilities are those of ``<run>/predictions_test.csv`` (:mod:`dermlab.files.predictions`:
``image,target,<classes>,scored``), which the classifier base writes in ``on_test_epoch_end`` (gathered over DDP
ranks, after view averaging, test-time augmentation and temperature scaling); the callback reads it on rank 0 in
``on_test_end`` and only when it was written during this test run (a stale file of an earlier run is never used).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import cast

import cv2
import lightning.pytorch as L
import numpy as np
import pandas as pd
from typing_extensions import override

from callbacks.plots import save_figure
from callbacks.protocols import ClassNames, LesionMasks, SplitSource, SplitTable, SubgroupMetadata
from dermlab.figures import forest
from dermlab.files.io import load_rgb
from dermlab.files.masks import read_mask
from dermlab.files.metadata import for_images
from dermlab.files.predictions import FILENAME as PREDICTIONS
from dermlab.files.predictions import read_predictions
from dermlab.files.skin_type import GROUP, TYPE
from dermlab.stats.gaps import skin_type_gaps, skin_type_score_names, skin_type_scores
from dermlab.stats.skin_tone import image_ita
from dermlab.stats.skin_type_agreement import ita_agreement
from dermlab.stats.subgroups import FEW, TOO_FEW, subgroup_table
from lightning_modules.base import LesionClassifier

log = logging.getLogger(__name__)


def skin_tones(paths: dict[str, Path], masks: dict[str, Path], max_side: int = 256) -> pd.DataFrame:
    """The ITA of each image (:func:`dermlab.stats.skin_tone.image_ita`), read with its longer side at most
    ``max_side`` px (the
    median ITA hardly moves; 600 × 450 → 256 × 192 makes it ~5× faster) and its lesion mask where ``masks`` has one.
    Returns ``image,ita,ita_category,skin_pixels,lesion,no_yellow`` in the order of ``paths``."""
    rows = []
    for image_id, path in paths.items():
        image = load_rgb(path, max_side=max_side)
        mask = None
        if image_id in masks:
            mask = cv2.resize(read_mask(masks[image_id]).astype(np.uint8), image.shape[1::-1],
                              interpolation=cv2.INTER_NEAREST)
        tone = image_ita(image, mask)
        rows.append({"image": image_id, "ita": tone.ita, "ita_category": tone.category, "skin_pixels": tone.pixels,
                     "lesion": tone.lesion, "no_yellow": tone.no_yellow})
    return pd.DataFrame(rows, columns=["image", "ita", "ita_category", "skin_pixels", "lesion", "no_yellow"])


def forest_labels(table: pd.DataFrame) -> list[str]:
    """``sex: female (n=120, 14 pos)`` per row (``pos`` left out in macro mode), with a space and ``*`` after a group
    whose interval is too narrow to trust (fewer than :data:`dermlab.stats.subgroups.FEW` images of a class)."""
    labels = []
    for row in table.itertuples():
        name = "all" if row.attribute == "all" else f"{row.attribute}: {row.group}"
        count = f"n={row.n}" + ("" if pd.isna(row.positives) else f", {int(row.positives)} pos")
        labels.append(f"{name} ({count})" + (" *" if TOO_FEW in str(row.note) else ""))
    return labels


class SubgroupMetrics(L.Callback):
    """Per-subgroup test metrics of a classifier (module docstring).

    Args:
        positive: ``auto`` (binary: the second class; multi-class: macro one-vs-rest), ``macro`` or a class name
            (e.g. ``MEL``: that class against the rest, predicted at the argmax); see :mod:`dermlab.stats.subgroups`.
        n_boot: bootstrap replicates per group and metric.
        seed: seed of the bootstrap.
        level: coverage of the intervals.
        skin_tone: also compute the ITA of every test image and add ``ita_category`` as an attribute.
        ita_side: longer side (px) the images are read at for the ITA.
        n_permutations: shuffles of the skin-type gap's permutation test.

    Runs only for a :class:`~lightning_modules.base.LesionClassifier`. Reads from the data module, where it has
    them: :class:`~callbacks.protocols.SplitSource` (a ``test_on`` test split's own data module),
    :class:`~callbacks.protocols.SubgroupMetadata` of that source (else no attributes but the skin tone) and
    :class:`~callbacks.protocols.SplitTable` (else no skin tones), with then :class:`~callbacks.protocols.LesionMasks`
    of the source.
    """

    def __init__(self, positive: str = "auto", n_boot: int = 2000, seed: int = 0, level: float = 0.95,
                 skin_tone: bool = True, ita_side: int = 256, n_permutations: int = 2000):
        self.positive, self.n_boot, self.seed, self.level = positive, n_boot, seed, level
        self.skin_tone, self.ita_side, self.n_permutations = skin_tone, ita_side, n_permutations
        self.started = 0.0
        self.table: pd.DataFrame | None = None
        #: the last test run's per-Fitzpatrick-group values and gaps, ``skin_type/<metric>_<group or gap…>`` → value
        self.test_scores: dict[str, float] = {}

    def test_metric_names(self, pl_module: L.LightningModule) -> list[str]:
        """The names :attr:`test_scores` gets after a test on images with skin-type labels (none without)."""
        return skin_type_score_names() if isinstance(pl_module, LesionClassifier) else []

    @override
    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # 1 s: file systems with coarse modification times
        self.started, self.table, self.test_scores = time.time() - 1.0, None, {}

    def predictions(self, trainer: L.Trainer, pl_module: L.LightningModule) -> pd.DataFrame | None:
        """This test run's ``predictions_test.csv`` on rank 0; None elsewhere or when the run wrote none."""
        path = Path(trainer.default_root_dir) / PREDICTIONS
        if not trainer.is_global_zero or not path.is_file() or path.stat().st_mtime < self.started:
            return None
        return read_predictions(path, getattr(pl_module, "test_class_names", cast(ClassNames, pl_module).class_names))

    @override
    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not isinstance(pl_module, LesionClassifier):
            return
        predictions = self.predictions(trainer, pl_module)
        if predictions is None:
            if trainer.is_global_zero:
                log.info("no subgroup metrics: this test run wrote no %s", PREDICTIONS)
            return
        started = time.perf_counter()
        run = Path(trainer.default_root_dir)
        datamodule = trainer.datamodule
        ids = predictions["image"].astype(str).tolist()
        source = datamodule.split_source("test") if isinstance(datamodule, SplitSource) else datamodule  # test_on
        metadata = source.metadata("test") if isinstance(source, SubgroupMetadata) else pd.DataFrame(index=ids)
        metadata = for_images(metadata, ids)
        tones = None
        if self.skin_tone and isinstance(datamodule, SplitTable):
            table = datamodule.table("test")
            where = dict(zip(table.ids, table.paths, strict=True))
            tones = skin_tones({i: where[i] for i in ids if i in where}, cast(LesionMasks, source).lesion_masks("test"),
                               self.ita_side)
            tones.to_csv(run / "ita_test.csv", index=False, float_format="%.2f")
            metadata["ita_category"] = tones.set_index("image")["ita_category"].reindex(ids).fillna("unknown")
        self.table = subgroup_table(predictions, metadata, pl_module.test_class_names, self.positive,
                                    n_boot=self.n_boot, seed=self.seed, level=self.level)
        self.table.to_csv(run / "subgroups_test.csv", index=False, float_format="%.4f")
        overall = self.table.iloc[0]
        figure = forest(forest_labels(self.table),
                        {m: (self.table[m], self.table[f"{m}_low"], self.table[f"{m}_high"])
                         for m in ("auc", "sensitivity", "specificity")},
                        reference={m: overall[m] for m in ("auc", "sensitivity", "specificity")},
                        title=f"test metrics per subgroup ({self.level:.0%} stratified bootstrap, "
                              f"{self.n_boot} resamples; dotted: all images;\n*: fewer than {FEW} images of a class, "
                              "interval too narrow to trust)")
        save_figure(trainer, figure, "test_subgroups")
        self.skin_type(run, predictions, metadata, pl_module.test_class_names, tones)
        missing = int(self.table.auc.isna().sum())
        log.info("subgroup metrics: %d groups of %d attributes (%d without an AUC) in %s and plots/test_subgroups.png "
                 "(%.1f s)", len(self.table) - 1, len(metadata.columns), missing, run / "subgroups_test.csv",
                 time.perf_counter() - started)

    def skin_type(self, run: Path, predictions: pd.DataFrame, metadata: pd.DataFrame, class_names: tuple[str, ...],
                  tones: pd.DataFrame | None) -> None:
        """Where the test images have Fitzpatrick labels: ``skin_type_test.csv`` (the lightest–darkest gaps),
        ``skin_type_agreement_test.json`` (the ITA proxy against the labels, where ``tones`` were computed) and
        :attr:`test_scores`."""
        gaps = skin_type_gaps(predictions, metadata, class_names, self.positive, n_boot=self.n_boot,
                              n_permutations=self.n_permutations, seed=self.seed, level=self.level)
        if not len(gaps):  # no skin-type labels: nothing to add (a grid cell's result.json keeps only real values)
            return
        self.test_scores = skin_type_scores(self.table, gaps)
        gaps.to_csv(run / "skin_type_test.csv", index=False, float_format="%.4f")
        auc = gaps.set_index("metric").loc["auc"]
        log.info("skin type: AUC %s %.3f vs %s %.3f, gap %.3f [%.3f, %.3f], permutation p = %.4f%s (%s)",
                 auc["first"], auc.first_value, auc.second, auc.second_value, auc.gap, auc.low, auc.high, auc.p_value,
                 f"; {auc.note}" if auc.note else "", run / "skin_type_test.csv")
        if tones is not None:
            labels = metadata[TYPE] if TYPE in metadata.columns else metadata[GROUP]
            ita = tones.set_index("image")["ita"].reindex(labels.index.astype(str))
            agreement = ita_agreement(ita.to_numpy(dtype=float), labels.astype(str).tolist())
            (run / "skin_type_agreement_test.json").write_text(json.dumps(agreement, indent=2))
