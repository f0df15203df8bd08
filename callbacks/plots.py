"""Write the ROC curve, confusion matrix, reliability diagram and a grid of CAMs under the run folder and to the
loggers.

What the module must offer: ``curves[split]`` (a torchmetrics collection with ``roc`` and
``confusion``, filled during the split; see ``LesionClassifier``), ``class_names``, for the reliability
diagram ``gathered_predictions(split)`` (the split's per-image probabilities and targets, see
:mod:`lightning_modules.predictions`), and, for the CAM grid, ``net`` with timm's ``forward_features``/``forward_head``
and ``input_normalisation`` (:class:`~callbacks.protocols.ClassificationCurves`,
:class:`~callbacks.protocols.GathersPredictions`, :class:`~callbacks.protocols.CAMModule`).
Files go to ``<trainer.default_root_dir>/plots/<split>_{roc,confusion,reliability,cams}.png`` (rewritten each
epoch; W&B keeps the history).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, cast

import lightning.pytorch as L
import matplotlib.pyplot as plt
import numpy as np
import torch
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities.types import STEP_OUTPUT
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from typing_extensions import override

from callbacks.protocols import CAMModule, ClassificationCurves, ClassNames, GathersPredictions, SplitClassNames
from datamodules.transforms import denormalise
from dermlab.figures import STYLE, image_grid
from dermlab.figures import save as save_png
from dermlab.stats.calibration import N_BINS, confidence_and_outcome, expected_calibration_error, reliability_bins
from lightning_modules.nets.cam import class_activation_maps
from lightning_modules.nets.metadata_branch import fed

log = logging.getLogger(__name__)


def plot_dir(trainer: L.Trainer) -> Path:
    """``<trainer.default_root_dir>/plots``, created if needed."""
    path = Path(trainer.default_root_dir) / "plots"
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_figure(trainer: L.Trainer, figure: Figure, name: str) -> Path:
    """Save ``figure`` as ``plots/<name>.png`` and send it to every W&B logger."""
    path = save_png(figure, plot_dir(trainer) / f"{name}.png")
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            logger.log_image(key=name.replace("_", "/", 1), images=[str(path)], step=trainer.global_step)
    return path


def reliability_figure(probabilities: torch.Tensor, targets: torch.Tensor, title: str, n_bins: int = N_BINS
                       ) -> tuple[Figure, float]:
    """Reliability diagram (Guo et al. 2017, Fig. 1 bottom; DeGroot & Fienberg 1983) of (N, C) probabilities
    and (N,) targets: per equal-width bin of the confidence (P(positive) for two classes, the top-label
    confidence otherwise), a bar of the observed frequency (fraction positive / fraction right) against the
    diagonal, the number of images written above each bar; the ECE (torchmetrics, ``n_bins`` bins, l1) in the
    title. Returns (figure, ECE)."""
    confidence, outcome = confidence_and_outcome(probabilities, targets)
    bins = reliability_bins(confidence, outcome, n_bins)
    ece = expected_calibration_error(probabilities, targets, n_bins)
    frequency = np.nan_to_num(bins["frequency"].numpy())
    binary = probabilities.shape[1] == 2
    with plt.rc_context(STYLE):
        figure, axis = plt.subplots(figsize=(4, 4))
        _draw_reliability(axis, bins, frequency, binary)
        axis.set_title(f"{title}: ECE {ece:.4f} ({n_bins} bins, n={len(targets)})")
    return figure, ece


def _draw_reliability(axis: Axes, bins: dict[str, torch.Tensor], frequency: np.ndarray, binary: bool) -> None:
    edges = bins["edges"].numpy()
    axis.bar(edges[:-1], frequency, width=np.diff(edges), align="edge", edgecolor="k", linewidth=0.5,
             color="tab:blue", label="observed")
    axis.plot([0, 1], [0, 1], "k:", linewidth=0.8, label="perfect calibration")
    for left, width, height, count in zip(edges[:-1], np.diff(edges), frequency, bins["count"].numpy(), strict=True):
        if count:
            axis.text(left + width / 2, height + 0.01, f"{int(count)}", ha="center", va="bottom", fontsize=6)
    axis.set(xlim=(0, 1), ylim=(0, 1.08),
             xlabel="predicted P(positive)" if binary else "confidence (top-label probability)",
             ylabel="fraction positive" if binary else "fraction right")
    axis.legend(loc="lower right")


class ClassificationPlots(L.Callback):
    """ROC curve, confusion matrix and reliability diagram at the end of every validation and test epoch.

    Needs a :class:`~callbacks.protocols.ClassificationCurves` module; the reliability diagram needs
    :class:`~callbacks.protocols.GathersPredictions` too (none without it).
    """

    def _plot(self, trainer: L.Trainer, module: L.LightningModule, split: str) -> None:
        curves = cast(ClassificationCurves, module).curves[split]
        if trainer.sanity_checking or curves["confusion"].update_count == 0:
            return
        roc, confusion = curves["roc"], curves["confusion"]
        # also a collective: every rank calls it
        predictions = module.gathered_predictions(split) if isinstance(module, GathersPredictions) else None
        if not trainer.is_global_zero:  # compute() syncs across ranks: every rank must call it
            roc.compute(), confusion.compute()
            return
        names = split_class_names(module, split)
        figure, axis = roc.plot(score=True)
        axis.plot([0, 1], [0, 1], "k:", linewidth=0.8)
        axis.set_title(f"{split} ROC (epoch {trainer.current_epoch})")
        if len(names) > 2:
            axis.legend([*names, "chance"], fontsize=7)
        save_figure(trainer, figure, f"{split}_roc")
        figure, axis = confusion.plot(labels=list(names))
        axis.set_title(f"{split} confusion matrix (rows: truth)")
        save_figure(trainer, figure, f"{split}_confusion")
        if predictions is not None and bool(predictions.scored.any()):
            rows = predictions.scored_only()  # the images the metrics use
            figure, _ = reliability_figure(rows.probabilities, rows.targets,
                                           f"{split} reliability (epoch {trainer.current_epoch})")
            save_figure(trainer, figure, f"{split}_reliability")

    @override
    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._plot(trainer, pl_module, "val")

    @override
    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._plot(trainer, pl_module, "test")


def split_class_names(module: L.LightningModule, split: str) -> tuple[str, ...]:
    """The classes ``split`` is scored on: another data set's evaluation classes on a ``test_on`` test split
    (:class:`~callbacks.protocols.SplitClassNames`), else the module's (:class:`~callbacks.protocols.ClassNames`)."""
    if isinstance(module, SplitClassNames):
        return tuple(module.split_class_names(split))
    return tuple(cast(ClassNames, module).class_names)


def first_view(images: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) as it is; of (B, V, C, H, W) multi-view batches, the first view of each image."""
    return images[:, 0] if images.ndim == 5 else images


class CAMGrid(L.Callback):
    """A grid of the first ``n_images`` test images (first view) with the class activation map of the predicted
    class overlaid, ``plots/test_cams.png``.

    Needs a :class:`~callbacks.protocols.CAMModule` (optionally :class:`~callbacks.protocols.SplitClassNames`: the
    truths' names on a ``test_on`` test split). A net whose head cannot take single images (the ``patch`` GRU, the
    hierarchical model: ``NotImplementedError``) draws nothing, with one log line.
    """

    def __init__(self, n_images: int = 16):
        self.n_images = n_images
        self.batches: list[dict] = []

    @override
    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.batches = []

    @override
    def on_test_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: STEP_OUTPUT,
                          batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> None:
        if sum(len(b["label"]) for b in self.batches) < self.n_images:
            self.batches.append({k: batch[k] for k in ("image", "label", "metadata") if k in batch})

    @override
    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero or not self.batches:
            return
        module = cast(CAMModule, pl_module)
        images = first_view(torch.cat([b["image"] for b in self.batches])[: self.n_images])
        labels = torch.cat([b["label"] for b in self.batches])[: self.n_images]
        metadata = (torch.cat([b["metadata"] for b in self.batches])[: self.n_images]
                    if all("metadata" in b for b in self.batches) else None)  # a metadata branch's input
        was_training = module.net.training
        module.net.eval()
        try:
            with fed(module.net, metadata):
                cams, predicted = class_activation_maps(module.net, images)
        except NotImplementedError as reason:  # e.g. the patch paper's GRU, which only classifies crop sequences
            log.info("no CAM grid: %s", reason)
            return
        finally:
            module.net.train(was_training)
        names, truths = module.class_names, split_class_names(pl_module, "test")  # truths: a test_on's classes
        titles = [f"T:{truths[t][:10]}\nP:{names[p][:10]}" for t, p in zip(labels, predicted, strict=True)]
        figure = image_grid(denormalise(images, module.input_normalisation), [c.cpu().numpy() for c in cams], titles,
                            suptitle="CAM of the predicted class (T: truth, P: prediction)")
        save_figure(trainer, figure, "test_cams")
