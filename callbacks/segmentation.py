"""Callbacks of the segmentation methods (``isic2018`` paper 002 §1).

* :class:`FreezeEncoder` — the segmentor's pre-trained VGG stays fixed for the first epochs ("we first fix
  the weights of the pre-trained VGG net for 50 epochs"), then trains with the rest; the SE blocks train
  throughout.
* :class:`MaskWriter` — ``dermlab predict`` writes one PNG per image and mask in the official submission naming.
* :class:`SegmentationFigure` — test images above their predicted masks (Fig. 1), ``plots/test_masks.png``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import lightning.pytorch as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import BasePredictionWriter
from typing_extensions import override

from callbacks.plots import save_figure
from callbacks.protocols import (
    ImageSplits,
    MaskFileNames,
    OfficialMasks,
    PretrainedModules,
    RefinedMasks,
    SegmentationFigureModule,
)
from datamodules.transforms import denormalise
from dermlab.figures import masks_below_images
from dermlab.files.masks import write_mask


class FreezeEncoder(L.Callback):
    """Keep ``pl_module.pretrained_modules()`` — the pre-trained VGG of the encoder, **not** its randomly
    initialised SE blocks — frozen (no gradient, BatchNorm statistics fixed) for the first ``epochs``
    (§1: "we first fix the weights of the pre-trained VGG net for 50 epochs and only train other parts of the
    segmentor and the critic network"). The SE blocks, decoder and head train from the first step.

    Lightning's ``BackboneFinetuning`` does not fit SegAN: it adds the backbone to *every* optimiser when it
    unfreezes (the critic's too) and ramps its learning rate on a schedule of its own, where the paper simply
    trains the whole segmentor on. Here the encoder stays in the segmentor's optimiser from the start, without
    gradients while frozen (Adam skips it), so the state follows from the epoch alone and resuming is exact.

    Needs a :class:`~callbacks.protocols.PretrainedModules` module (:class:`~lightning_modules.segmentation.SegAN`
    brings the callback along).
    """

    def __init__(self, epochs: int = 50):
        self.epochs = epochs

    def frozen(self, trainer: L.Trainer) -> bool:
        """Whether the pre-trained modules are fixed in the trainer's current epoch (0-based: epochs 0 … epochs − 1)."""
        return trainer.current_epoch < self.epochs

    @override
    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for module in cast(PretrainedModules, pl_module).pretrained_modules():
            module.requires_grad_(not self.frozen(trainer))
        if trainer.current_epoch == self.epochs and self.epochs > 0:
            print(f"[FreezeEncoder] epoch {self.epochs}: the VGG now trains with the rest of the segmentor")

    @override
    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: dict[str, Any],
                             batch_idx: int) -> None:
        if self.frozen(trainer):
            pretrained = cast(PretrainedModules, pl_module).pretrained_modules()
            for module in pretrained:  # Lightning puts modules back in train mode after
                module.eval()          # each validation


class MaskWriter(BasePredictionWriter):
    """Writes each predicted mask, resized to its image's original size, as a 0/255 PNG named as the challenge
    expects (``ISIC_0000000_segmentation.png`` for task 1; the datamodule's ``mask_file_names``) into ``output``
    (default ``<run folder>/masks_<split>``); ``dermlab score --seg TRUTH_DIR PRED_DIR`` scores the folder.

    ``score`` (default on): when the datamodule names the official ground-truth folder of the predicted split
    (``official_truth_folder``), the written full-size masks are scored against it as the challenge does
    (:func:`dermlab.challenge.scoring.score_segmentation`) and kept in ``scores`` as ``full/<metric>`` — what a grid
    cell with ``predict: true`` adds to its result (Tables 1–2 of the ``isic2018`` paper report these).

    Needs a :class:`~callbacks.protocols.MaskFileNames` data module (optionally ``predict_split``, default ``test``,
    and :class:`~callbacks.protocols.OfficialMasks`) and a module whose ``predict_step`` returns ``image_id``,
    ``masks`` (B, K, h, w) at the network's resolution and ``original_size`` (B, 2) or None, as
    :class:`~lightning_modules.segmentation.LesionSegmenter` does; a batch without ``masks`` (a classifier's) is
    skipped.
    """

    def __init__(self, output: str | None = None, score: bool = True):
        super().__init__(write_interval="batch")
        self.output, self.score = output, score
        self.written: Path | None = None
        #: the last prediction run's full-size scores against the official masks, ``full/<metric>`` → value
        #: (empty when it was not scored)
        self.scores: dict[str, float] = {}

    def metric_names(self, pl_module: L.LightningModule) -> list[str]:
        """The ``full/`` names :attr:`scores` gets (empty with ``score: false``)."""
        from dermlab.challenge.scoring import full_size_metric_names

        names = getattr(pl_module, "class_names", None)
        return full_size_metric_names(tuple(names)) if self.score and names else []

    @override
    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.written, self.scores = None, {}

    def folder(self, trainer: L.Trainer) -> Path:
        """Where the masks go: ``output``, or ``<run folder>/masks_<predict_split>``."""
        split = getattr(trainer.datamodule, "predict_split", "test")
        return Path(self.output or Path(trainer.default_root_dir) / f"masks_{split}")

    @override
    def write_on_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, prediction: dict[str, Any],
                           batch_indices: Sequence[int] | None, batch: dict[str, Any], batch_idx: int,
                           dataloader_idx: int = 0) -> None:
        if "masks" not in prediction:
            return
        folder = self.folder(trainer)
        folder.mkdir(parents=True, exist_ok=True)
        names_of = cast(MaskFileNames, trainer.datamodule).mask_file_names
        sizes = prediction.get("original_size")
        for index, (image_id, maps) in enumerate(zip(prediction["image_id"], prediction["masks"], strict=True)):
            if sizes is not None:
                maps = F.interpolate(maps[None].float(), size=tuple(int(s) for s in sizes[index]), mode="bilinear",
                                     align_corners=False)[0]
            for name, channel in zip(names_of(image_id), maps, strict=True):
                write_mask(folder / name, (channel > 0.5).cpu().numpy())
        self.written = folder

    @override
    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.written is None or not trainer.is_global_zero:
            return
        print(f"wrote masks to {self.written}")
        data = trainer.datamodule
        truth = (data.official_truth_folder(getattr(data, "predict_split", "test"))
                 if isinstance(data, OfficialMasks) else None)
        if self.score and truth is not None:
            from dermlab.challenge.scoring import full_size_metrics, score_segmentation

            self.scores = full_size_metrics(score_segmentation(truth, self.written))
            print(f"full-size scores against {truth}: {self.scores}")


class SegmentationFigure(L.Callback):
    """After testing: the first ``n_images`` test images above their predicted (post-processed when set) masks,
    with the ground truth's outline in red — ``plots/test_masks.png`` (Fig. 1) and to W&B. With several masks
    (task 2's attributes) their union is drawn.

    Needs a :class:`~callbacks.protocols.ImageSplits` data module and a
    :class:`~callbacks.protocols.SegmentationFigureModule`; a module without ``refined``
    (:class:`~callbacks.protocols.RefinedMasks`: a classifier) draws nothing.
    """

    def __init__(self, n_images: int = 6):
        self.n_images = n_images

    @override
    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        data = cast("ImageSplits | None", trainer.datamodule)
        if not trainer.is_global_zero or data is None or not isinstance(pl_module, RefinedMasks):
            return
        module = cast(SegmentationFigureModule, pl_module)
        dataset = data.dataset("test", augment=False)
        items = [dataset[i] for i in range(min(self.n_images, len(dataset)))]
        images = torch.stack([x["image"] for x in items]).to(pl_module.device)
        was_training = pl_module.training
        pl_module.eval()
        with torch.no_grad():
            masks = module.refined(images, module.probabilities(images))
        pl_module.train(was_training)
        what = "attribute masks (union)" if masks.shape[1] > 1 else "masks"  # task 2: the attributes' union
        pictures = list(denormalise(images, data.normalisation))
        figure = masks_below_images(pictures, [m.amax(0).cpu().numpy() for m in masks],
                                    [x["mask"].amax(0).numpy() for x in items], [x["image_id"] for x in items],
                                    suptitle=f"test images and predicted {what} (red: ground-truth outline)")
        save_figure(trainer, figure, "test_masks")
