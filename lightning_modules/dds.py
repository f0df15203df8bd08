"""``dds`` paper: data-driven deep supervision (Mishra et al.), the classifier with auxiliary loss.

What is new over :class:`~lightning_modules.base.LesionClassifier` is only the auxiliary branch:
Loss_total = Loss_main + Loss_aux (§2.3), both cross-entropy (with the suite's per-sample weights),
the branch at layer(s) that are either given (Table 2 ablation rows: ``[L24]``, ``[L24, L28]``)
or chosen from data (``auto``: the :class:`~callbacks.layer_selection.LayerSelection` callback,
argmin_h ``|Obj − LERF_h|``). ``aux_layers: null`` is the plain classifier (the paper's Proposed*).
The base network loads pretrained weights as usual; the branch is He-initialised (super-model
encapsulation, Fig. 1c). Only the main head predicts. Every VGG-type classifier — a VGG backbone's
own fc6/fc7 and the VGG-type auxiliary branch — has dropout ``vgg_dropout`` (§2.3: "multiple FC
layers are used along with activation and dropout layers", after VGG [21], whose value is 0.5).
"""

from __future__ import annotations

from typing import Literal

import torch
from timm.models.vgg import VGG
from torch import nn

from lightning_modules.base import LesionClassifier
from lightning_modules.nets.backbone import create_backbone
from lightning_modules.nets.deep_supervision import DeepSupervision
from lightning_modules.nets.lerf import Gradient, paper_name


def set_vgg_dropout(net: nn.Module, p: float) -> None:
    """Set the dropout after fc6 and fc7 of a timm VGG (``pre_logits.drop`` and ``head.drop``); others untouched.

    timm's VGG classifier is fc6 (7×7 conv) → ReLU → Dropout → fc7 (1×1 conv) → ReLU → pool → Dropout → fc8,
    i.e. VGG's FC–ReLU–Dropout, FC–ReLU–Dropout, FC, with both dropouts set by ``drop_rate`` (default 0).
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"vgg_dropout must be in [0, 1), got {p}")
    if isinstance(net, VGG):
        net.pre_logits.drop.p = p
        net.head.drop.p = p


class DeeplySupervisedClassifier(LesionClassifier):
    """A timm classifier with auxiliary classifiers on inner conv layers.

    Args:
        aux_layers: ``auto`` (choose from LERF and Obj), a list of conv layers (``L28`` or
            ``features.28``, ``layer3.1.conv2``), or null for no deep supervision.
        aux_classifier: ``resnet`` (GAP + FC, the paper's default) or ``vgg`` (FC–ReLU–Dropout stack).
        aux_weight: weight of Loss_aux (the paper adds it with weight 1).
        object_size: for ``auto``: Obj in pixels, an ``objsize.json``, or a stage-1 checkpoint / run folder.
        lerf_inits: He initialisations for LERF (paper: 20).
        lerf_gradient: ``signed`` thresholds ∂q/∂p as the paper writes it (§2.1, the default), ``abs``
            thresholds ``|∂q/∂p|`` (larger LERFs, so an earlier layer for the same Obj).
        vgg_dropout: dropout probability after fc6 and fc7 of a VGG backbone's classifier and in the
            VGG-type auxiliary branch (VGG [21] and torchvision: 0.5; timm's VGG default is 0). Other
            backbones keep ``drop_rate``.
        objsize_samples: training images whose CAMs give Obj.
        lerf_cache: folder of cached LERF tables (``dermlab lerf`` writes there too).
        **kwargs: the base classifier's arguments (backbone, pretrained_weights, optimizer, ...).
    """

    def __init__(self, aux_layers: list[str] | Literal["auto"] | None = "auto",
                 aux_classifier: Literal["resnet", "vgg"] = "resnet", aux_weight: float = 1.0,
                 object_size: float | str | None = None, lerf_inits: int = 20, objsize_samples: int = 200,
                 lerf_cache: str = "runs/lerf", lerf_gradient: Gradient = "signed", vgg_dropout: float = 0.5,
                 **kwargs):
        if aux_layers == "auto" and object_size is None:
            raise ValueError("aux_layers: auto needs object_size (a number, an objsize.json or a stage-1 "
                             "checkpoint / run folder); or list the layers, or null for no deep supervision")
        super().__init__(**kwargs)
        self.selection: dict | None = None

    def build_net(self) -> nn.Module:
        hp = self.hparams
        base = create_backbone(hp.backbone, hp.num_classes, hp.pretrained_weights, hp.drop_rate,
                               **(hp.backbone_args or {}))
        dropout = hp.get("vgg_dropout", 0.5)
        set_vgg_dropout(base, dropout)
        layers = hp.aux_layers if isinstance(hp.aux_layers, (list, tuple)) else ()
        return DeepSupervision(base, hp.num_classes, layers, hp.aux_classifier, dropout=dropout)

    def attach_aux(self, layers: list[str], selection: dict | None = None) -> None:
        """Add branches (before the optimiser is built); the checkpoint's hparams then name the layers."""
        names = self.net.attach(layers)
        self.net.heads.to(self.device)
        self.hparams["aux_layers"] = [paper_name(n) for n in names]
        self.selection = selection

    def configure_callbacks(self):
        from callbacks.branch_cams import BranchCAMs
        from callbacks.layer_selection import LayerSelection

        hp = self.hparams
        callbacks = [BranchCAMs()]
        if hp.aux_layers == "auto":
            callbacks.append(LayerSelection(hp.object_size, hp.lerf_inits, hp.objsize_samples, hp.lerf_cache,
                                            lerf_gradient=hp.get("lerf_gradient", "signed")))
        return callbacks

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        logits, aux = self.net(batch["image"], with_aux=True)
        main = self.compute_loss(logits, batch)
        auxiliary = sum((self.compute_loss(a, batch) for a in aux.values()), torch.zeros_like(main))
        loss = main + self.hparams.aux_weight * auxiliary
        size = len(batch["label"])
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=size)
        self.log_dict({"train/loss_main": main, "train/loss_aux": auxiliary}, on_epoch=True, batch_size=size)
        return loss

    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()
        if self.selection:  # supplementary Table 1: Obj, and the LERF of the layer it chose
            self.log_dict({"test/object_size": float(self.selection["object_size"]),
                           "test/aux_lerf": float(self.selection["lerf"][self.selection["layer"]])})

    def logged_metric_names(self) -> list[str]:
        """The base metrics, the two loss terms, and Obj / the chosen layer's LERF (when chosen from data)."""
        return [*super().logged_metric_names(), "train/loss_main", "train/loss_aux", "test/object_size",
                "test/aux_lerf"]
