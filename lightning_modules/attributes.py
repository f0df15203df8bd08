"""Lesion attribute detection, ``isic2018`` paper (002) §2 (ISIC 2018 task 2).

The task 1 encoder–decoder (SE-VGG19 U-Net) with a 1×1 convolution giving five attribute masks (globules,
milia-like cysts, negative network, pigment network, streaks), and — the multi-task part — an FC layer on the
encoder's last features that predicts which attributes the image shows. Loss: per-pixel cross-entropy of the
masks (binary per attribute: they may overlap) plus the multi-label soft-margin loss of the presence logits;
the presence targets are read from the (augmented) masks themselves, so the two always agree. ``multitask:
false`` is Table 2's "VGG" row (masks only). ``init_from`` starts from a task 1 run (encoder and decoder; the
heads are new).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MultilabelAUROC
from typing_extensions import override

from lightning_modules.evaluation import EVAL_SPLITS
from lightning_modules.nets.backbone import checkpoint_net_state, run_checkpoint
from lightning_modules.nets.segmentation import Architecture, build_segmentor
from lightning_modules.segmentation import LesionSegmenter

log = logging.getLogger(__name__)


def presence_targets(masks: torch.Tensor) -> torch.Tensor:
    """(N, K) 0/1: whether each attribute mask of an image holds any pixel."""
    return (masks.flatten(2).amax(2) > 0.5).to(masks.dtype)


class AttributeSegmenter(LesionSegmenter):
    """Task 2: five attribute masks, plus (``multitask``) image-level attribute presence.

    Args:
        multitask: add the presence head and its MultiLabelSoftMargin loss (Table 2: "VGG + Multitask").
        presence_weight: weight of the presence loss.
        init_from: a task 1 run (folder or ``.ckpt``) whose segmentor weights of matching shape start this one.
        head_kernel: side of the mask head's convolution (paper: 1).
    """

    def __init__(self, multitask: bool = True, presence_weight: float = 1.0, init_from: str | None = None,
                 architecture: Architecture = "unet", encoder: str = "vgg19_bn", se_blocks: bool = True,
                 head_kernel: int = 1, monitor: str = "val/attribute_jaccard", **kwargs: Any):
        super().__init__(architecture=architecture, encoder=encoder, se_blocks=se_blocks, monitor=monitor, **kwargs)
        if self.hparams.num_classes < 2:
            raise ValueError("attribute detection needs the task 2 datamodule's 5 attribute masks "
                             f"(num_classes {self.hparams.num_classes})")
        if init_from:
            self.load_task1(init_from)
        self.presence = nn.ModuleDict({s: MultilabelAUROC(self.hparams.num_classes) for s in EVAL_SPLITS})

    @override
    def build_net(self) -> nn.Module:
        """The task 1 segmentor with a ``head_kernel`` × ``head_kernel`` mask head and, with ``multitask``, the
        presence head: it then returns (mask logits, presence logits)."""
        hp = self.hparams
        return build_segmentor(hp.architecture, hp.encoder, hp.num_classes, hp.pretrained_weights, hp.se_blocks,
                               hp.decoder_channels, hp.head_kernel, presence_head=hp.multitask)

    def load_task1(self, source: str) -> None:
        """Copy the segmentor tensors of a task 1 run (folder or ``.ckpt``) whose names and shapes match this net's.

        Raises:
            ValueError: the run holds no encoder tensor of this architecture.
            DataError: the run has not finished or its checkpoint cannot be read.
        """
        path = run_checkpoint(source)
        _, state = checkpoint_net_state(path)
        own = self.net.state_dict()
        usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        if not any(k.startswith("net.encoder.") for k in usable):
            raise ValueError(f"'{path}' holds no segmentor encoder of this architecture; init_from takes a task 1 "
                             "run of the same encoder")
        self.net.load_state_dict(usable, strict=False)
        log.info("attribute segmenter: %d of %d tensors from the task 1 run %s", len(usable), len(own), path)

    def outputs(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, K, H, W) attribute mask logits and (B, K) presence logits (None without ``multitask``)."""
        out = self.net(images)
        return out if isinstance(out, tuple) else (out, None)

    @override
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.outputs(images)[0]

    @override
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """Per-pixel binary cross-entropy of the masks (plus the auxiliary terms) + ``presence_weight`` × the
        multi-label soft-margin loss of the presence logits against the masks' own presence."""
        masks, presence = self.outputs(batch["image"])
        loss = self.segmentation_loss(masks, batch["mask"])
        if presence is not None:
            presence_loss = F.multilabel_soft_margin_loss(presence.float(), presence_targets(batch["mask"]))
            self.log("train/presence_loss", presence_loss, on_step=False, on_epoch=True, batch_size=len(masks))
            loss = loss + self.hparams.presence_weight * presence_loss
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(masks))
        return loss

    @override
    def _evaluation_step(self, batch: dict[str, Any], split: str, probabilities: torch.Tensor | None = None) -> None:
        masks, presence = self.outputs(batch["image"])
        super()._evaluation_step(batch, split, masks.float().sigmoid())
        if presence is not None:
            self.presence[split].update(presence.float().sigmoid(), presence_targets(batch["mask"]).long())

    @override
    def _log_split(self, split: str) -> None:
        super()._log_split(split)
        if self.hparams.multitask and self.presence[split].update_count:
            self.log(f"{split}/presence_auc", self.presence[split].compute(), sync_dist=True)
            self.presence[split].reset()

    @override
    def logged_metric_names(self) -> list[str]:
        """The segmentation metrics and, with ``multitask``, the presence loss and ``<split>/presence_auc``."""
        extra = ["train/presence_loss", *(f"{s}/presence_auc" for s in EVAL_SPLITS)] if self.hparams.multitask else []
        return [*super().logged_metric_names(), *extra]
