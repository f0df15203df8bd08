"""Write the ROC curve, confusion matrix and a grid of CAMs under the run folder and to the loggers.

What the module must offer: ``curves[split]`` (a torchmetrics collection with ``roc`` and
``confusion``, filled during the split; see ``LesionClassifier``), ``class_names``, and, for the
CAM grid, ``net`` with timm's ``forward_features``/``forward_head``.
Files go to ``<trainer.default_root_dir>/plots/<split>_{roc,confusion,cams}.png`` (rewritten each
epoch; W&B keeps the history).
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightning.pytorch as L
import torch
from lightning.pytorch.loggers import WandbLogger

from datamodules.transforms import denormalise
from dermlab.figures import image_grid
from dermlab.figures import save as save_png
from lightning_modules.nets.cam import class_activation_maps

log = logging.getLogger(__name__)


def plot_dir(trainer: L.Trainer) -> Path:
    path = Path(trainer.default_root_dir) / "plots"
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_figure(trainer: L.Trainer, figure, name: str) -> Path:
    """Save ``figure`` as ``plots/<name>.png`` and send it to every W&B logger."""
    path = save_png(figure, plot_dir(trainer) / f"{name}.png")
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            logger.log_image(key=name.replace("_", "/", 1), images=[str(path)], step=trainer.global_step)
    return path


class ClassificationPlots(L.Callback):
    """ROC curve and confusion matrix at the end of every validation and test epoch."""

    def _plot(self, trainer: L.Trainer, module: L.LightningModule, split: str) -> None:
        curves = module.curves[split]
        if trainer.sanity_checking or curves["confusion"].update_count == 0:
            return
        roc, confusion = curves["roc"], curves["confusion"]
        if not trainer.is_global_zero:  # compute() syncs across ranks: every rank must call it
            roc.compute(), confusion.compute()
            return
        figure, axis = roc.plot(score=True)
        axis.plot([0, 1], [0, 1], "k:", linewidth=0.8)
        axis.set_title(f"{split} ROC (epoch {trainer.current_epoch})")
        if len(module.class_names) > 2:
            axis.legend([*module.class_names, "chance"], fontsize=7)
        save_figure(trainer, figure, f"{split}_roc")
        figure, axis = confusion.plot(labels=list(module.class_names))
        axis.set_title(f"{split} confusion matrix (rows: truth)")
        save_figure(trainer, figure, f"{split}_confusion")

    def on_validation_epoch_end(self, trainer, pl_module):
        self._plot(trainer, pl_module, "val")

    def on_test_epoch_end(self, trainer, pl_module):
        self._plot(trainer, pl_module, "test")


def first_view(images: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) as it is; of (B, V, C, H, W) multi-view batches, the first view of each image."""
    return images[:, 0] if images.ndim == 5 else images


class CAMGrid(L.Callback):
    """A grid of test images with the class activation map of the predicted class overlaid."""

    def __init__(self, n_images: int = 16):
        self.n_images = n_images
        self.batches: list[dict] = []

    def on_test_epoch_start(self, trainer, pl_module):
        self.batches = []

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if sum(len(b["label"]) for b in self.batches) < self.n_images:
            self.batches.append({k: batch[k] for k in ("image", "label")})

    def on_test_epoch_end(self, trainer, pl_module):
        if not trainer.is_global_zero or not self.batches:
            return
        images = first_view(torch.cat([b["image"] for b in self.batches])[: self.n_images])
        labels = torch.cat([b["label"] for b in self.batches])[: self.n_images]
        was_training = pl_module.net.training
        pl_module.net.eval()
        try:
            cams, predicted = class_activation_maps(pl_module.net, images)
        except NotImplementedError as reason:  # e.g. the patch paper's GRU, which only classifies crop sequences
            log.info("no CAM grid: %s", reason)
            return
        finally:
            pl_module.net.train(was_training)
        names = pl_module.class_names
        titles = [f"T:{names[t][:10]}\nP:{names[p][:10]}" for t, p in zip(labels, predicted, strict=True)]
        figure = image_grid(denormalise(images, pl_module.input_normalisation), [c.cpu().numpy() for c in cams], titles,
                            suptitle="CAM of the predicted class (T: truth, P: prediction)")
        save_figure(trainer, figure, "test_cams")
