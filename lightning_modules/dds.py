"""``dds`` paper: data-driven deep supervision (Mishra et al.), the classifier with auxiliary loss.

What is new over :class:`~lightning_modules.base.LesionClassifier`: the auxiliary branch —
Loss_total = Loss_main + Loss_aux (§2.3), both cross-entropy (with the suite's per-sample weights),
the branch at layer(s) that are either given (Table 2 ablation rows: ``[L24]``, ``[L24, L28]``)
or chosen from data (``auto``: the :class:`~callbacks.layer_selection.LayerSelection` callback,
argmin_h ``|Obj − LERF_h|``); ``aux_layers: null`` is the plain classifier (the paper's Proposed*) —
and the main head of a VGG: ``main_head: gap_fc`` (default) average-pools the feature extractor's output and
classifies it with one FC (§2.2, Fig. 2(f); Table 2's classifier R), so the CAM that gives Obj is the paper's
Σ_k w_k^c f_k; ``vgg_mlp`` keeps timm's VGG head (fc6 7×7 conv → 4096, fc7 → 4096, fc8; Grad-CAM).
The base network loads pretrained weights as usual (a VGG's fc6/fc7 are then dropped for ``gap_fc`` and the
new FC starts N(0, 0.01²)); the branch is He-initialised (super-model encapsulation, Fig. 1c). Only the main
head predicts. Every VGG-type classifier — the VGG-type auxiliary branch, and fc6/fc7 of ``main_head: vgg_mlp``
— has dropout ``vgg_dropout`` (§2.3: "multiple FC layers are used along with activation and dropout layers",
after VGG [21], whose value is 0.5); the ``gap_fc`` head has no hidden FC layers and keeps ``drop_rate`` (0).
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import lightning.pytorch as L
import torch
from typing_extensions import override

from lightning_modules.base import LesionClassifier
from lightning_modules.nets.deep_supervision import MAIN_HEADS, MainHead
from lightning_modules.nets.lerf import Gradient, paper_name

log = logging.getLogger(__name__)


class DeeplySupervisedClassifier(LesionClassifier):
    """A timm classifier with auxiliary classifiers on inner conv layers.

    Args:
        aux_layers: ``auto`` (choose from LERF and Obj), a list of conv layers (``L28`` or
            ``features.28``, ``layer3.1.conv2``), or null for no deep supervision. A branch reads its
            layer's activation (:func:`~lightning_modules.nets.deep_supervision.activation_point`).
        aux_classifier: ``resnet`` (GAP + FC, the paper's default) or ``vgg`` (FC–ReLU–Dropout stack).
        aux_weight: weight of Loss_aux (the paper adds it with weight 1).
        main_head: a VGG backbone's classifier: ``gap_fc`` (the paper's GAP + FC, §2.2 Fig. 2(f), default) or
            ``vgg_mlp`` (timm's fc6/fc7/fc8, as older versions trained; load their checkpoints with it).
            Other backbones keep their own head (a ResNet's is GAP + FC); ``vgg_mlp`` on them is an error.
        object_size: for ``auto``: Obj in pixels, an ``objsize.json``, or a stage-1 checkpoint / run folder.
        lerf_inits: He initialisations for LERF (paper: 20).
        lerf_gradient: ``signed`` thresholds ∂q/∂p as the paper writes it (§2.1, the default), ``abs``
            thresholds ``|∂q/∂p|`` (larger LERFs, so an earlier layer for the same Obj).
        vgg_dropout: dropout probability in the VGG-type auxiliary branch and after fc6 and fc7 of
            ``main_head: vgg_mlp`` (VGG [21] and torchvision: 0.5; timm's VGG default is 0). The ``gap_fc``
            head and other backbones keep ``drop_rate``.
        objsize_samples: training images whose CAMs give Obj.
        lerf_cache: folder of cached LERF tables (``dermlab lerf`` writes there too).
        **kwargs: the base classifier's arguments (backbone, pretrained_weights, optimizer, ...).
    """

    def __init__(self, aux_layers: list[str] | Literal["auto"] | None = "auto",
                 aux_classifier: Literal["resnet", "vgg"] = "resnet", aux_weight: float = 1.0,
                 object_size: float | str | None = None, lerf_inits: int = 20, objsize_samples: int = 200,
                 lerf_cache: str = "runs/lerf", lerf_gradient: Gradient = "signed", vgg_dropout: float = 0.5,
                 main_head: MainHead = "gap_fc", **kwargs: Any):
        if aux_layers == "auto" and object_size is None:
            raise ValueError("aux_layers: auto needs object_size (a number, an objsize.json or a stage-1 "
                             "checkpoint / run folder); or list the layers, or null for no deep supervision")
        if main_head not in MAIN_HEADS:
            raise ValueError(f"main_head must be one of {MAIN_HEADS}, got {main_head!r}")
        super().__init__(**kwargs)
        self.selection: dict[str, Any] | None = None

    net_builder = "deep_supervision"

    @override
    def net_arguments(self) -> dict[str, Any]:
        """The base arguments, ``main_head`` and ``vgg_dropout`` (fc6/fc7 of a VGG), and the branches at the listed
        ``aux_layers`` (none yet for ``auto``: :meth:`attach_aux` adds them and records the layers) with their
        ``aux_classifier`` (:func:`lightning_modules.nets.recipes.deep_supervision`)."""
        hp = self.hparams
        layers = list(hp.aux_layers) if isinstance(hp.aux_layers, (list, tuple)) else []
        return {**super().net_arguments(), "main_head": hp.get("main_head", "gap_fc"),
                "vgg_dropout": hp.get("vgg_dropout", 0.5), "aux_layers": layers, "aux_classifier": hp.aux_classifier}

    def attach_aux(self, layers: list[str], selection: dict[str, Any] | None = None) -> None:
        """Add branches (before the optimiser is built); the checkpoint's hparams then name the layers.

        ``selection``: :class:`~callbacks.layer_selection.LayerSelection`'s record of the choice (Obj, the LERF
        table), whose Obj and chosen LERF are logged after testing.
        """
        names = self.net.attach(layers)
        self.net.heads.to(self.device)
        self.hparams["aux_layers"] = [paper_name(n) for n in names]
        self.selection = selection

    @override
    def configure_callbacks(self) -> list[L.Callback]:
        """:class:`~callbacks.branch_cams.BranchCAMs` (Fig. 4) and, for ``aux_layers: auto``,
        :class:`~callbacks.layer_selection.LayerSelection`, which chooses and attaches the branch."""
        from callbacks.branch_cams import BranchCAMs
        from callbacks.layer_selection import LayerSelection

        hp = self.hparams
        callbacks = [BranchCAMs()]
        if hp.aux_layers == "auto":
            callbacks.append(LayerSelection(hp.object_size, hp.lerf_inits, hp.objsize_samples, hp.lerf_cache,
                                            lerf_gradient=hp.get("lerf_gradient", "signed")))
        return callbacks

    @override
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """Loss_main + ``aux_weight`` · Σ Loss_aux over the branches (§2.3), each the suite's weighted CE."""
        logits, aux = self.net(batch["image"], with_aux=True)
        main = self.compute_loss(logits, batch)
        auxiliary = sum((self.compute_loss(a, batch) for a in aux.values()), torch.zeros_like(main))
        loss = main + self.hparams.aux_weight * auxiliary
        size = len(batch["label"])
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=size)
        self.log_dict({"train/loss_main": main, "train/loss_aux": auxiliary}, on_epoch=True, batch_size=size)
        return loss

    @override
    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()
        if self.selection:  # supplementary Table 1: Obj, and the LERF of the layer it chose
            self.log_dict({"test/object_size": float(self.selection["object_size"]),
                           "test/aux_lerf": float(self.selection["lerf"][self.selection["layer"]])})

    @override
    def logged_metric_names(self) -> list[str]:
        """The base metrics, the two loss terms, and Obj / the chosen layer's LERF (when chosen from data)."""
        return [*super().logged_metric_names(), "train/loss_main", "train/loss_aux", "test/object_size",
                "test/aux_lerf"]
