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
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as L
import timm
import torch
from timm.models.vgg import VGG, ConvMlp
from torch import nn
from typing_extensions import override

from dermlab.errors import DataError
from lightning_modules.base import LesionClassifier
from lightning_modules.nets.backbone import checkpoint_net_state, create_backbone, run_checkpoint
from lightning_modules.nets.deep_supervision import MAIN_HEADS, DeepSupervision, MainHead, use_gap_fc_head
from lightning_modules.nets.lerf import Gradient, paper_name

log = logging.getLogger(__name__)


def set_vgg_dropout(net: nn.Module, p: float) -> None:
    """Set the dropout after fc6 and fc7 of a timm VGG head (``pre_logits.drop`` and ``head.drop``).

    timm's VGG classifier is fc6 (7×7 conv) → ReLU → Dropout → fc7 (1×1 conv) → ReLU → pool → Dropout → fc8,
    i.e. VGG's FC–ReLU–Dropout, FC–ReLU–Dropout, FC, with both dropouts set by ``drop_rate`` (default 0). A VGG
    with the ``gap_fc`` head (no fc6/fc7) and other networks are left untouched. Raises ValueError unless 0 ≤ p < 1.
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"vgg_dropout must be in [0, 1), got {p}")
    if isinstance(net, VGG) and isinstance(net.pre_logits, ConvMlp):
        net.pre_logits.drop.p = p
        net.head.drop.p = p


def is_run_checkpoint(weights: str | None) -> bool:
    """Whether ``pretrained_weights`` names a run of this suite (a ``.ckpt`` or a run / grid cell folder)."""
    return bool(weights) and (Path(weights).expanduser().is_dir() or str(weights).endswith(".ckpt"))


def load_run_weights(net: nn.Module, path: Path) -> None:
    """Load a dermlab checkpoint's network into a VGG with the ``gap_fc`` head (transfer from an earlier run).

    The conv features must match; a source's fc6/fc7 (``pre_logits.*``, a ``vgg_mlp`` run) have no place in
    GAP + FC and are skipped; an FC of another shape (other classes, or a ``vgg_mlp`` source) is re-initialised
    N(0, 0.01²). Raises DataError for a checkpoint of another backbone.
    """
    _, state = checkpoint_net_state(path)
    state = {k: v for k, v in state.items() if not k.startswith("pre_logits.")}
    own = net.state_dict()
    mismatched = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    if any(not k.startswith("head.fc.") for k in mismatched):
        raise DataError(f"cannot load '{path}': {mismatched[0]} has another shape; was it trained with this backbone?")
    missing, unexpected = net.load_state_dict({k: v for k, v in state.items() if k not in mismatched}, strict=False)
    if unexpected or [k for k in missing if not k.startswith("head.fc.")]:
        raise DataError(f"cannot load '{path}': it was trained with another backbone "
                        f"({(unexpected or missing)[0]} does not match).")
    if mismatched or missing:
        use_gap_fc_head(net, net.head.drop.p)  # a fresh FC
    log.info("backbone: loaded weights from run checkpoint %s%s", path,
             " (classifier re-initialised)" if mismatched or missing else "")


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

    @override
    def build_net(self) -> nn.Module:
        """The base network (``main_head`` on a VGG, ``vgg_dropout`` in its fc6/fc7) in a
        :class:`~lightning_modules.nets.deep_supervision.DeepSupervision` with branches at the listed
        ``aux_layers`` (none yet for ``auto``: :meth:`attach_aux` adds it). A ``pretrained_weights`` run of a VGG
        with ``gap_fc`` loads through :func:`load_run_weights`."""
        hp = self.hparams
        head, args = hp.get("main_head", "gap_fc"), hp.backbone_args or {}
        if head == "gap_fc" and is_run_checkpoint(hp.pretrained_weights) and \
                timm.models.is_model_in_modules(hp.backbone, ["vgg"]):
            base = use_gap_fc_head(timm.create_model(hp.backbone, pretrained=False, num_classes=hp.num_classes,
                                                     drop_rate=hp.drop_rate, **args), hp.drop_rate)
            load_run_weights(base, run_checkpoint(hp.pretrained_weights))
        else:  # ImageNet weights load into timm's VGG as they are; use_gap_fc_head then drops fc6/fc7
            base = create_backbone(hp.backbone, hp.num_classes, hp.pretrained_weights, hp.drop_rate, **args)
            if head == "gap_fc":
                use_gap_fc_head(base, hp.drop_rate)
            elif not isinstance(base, VGG):
                raise ValueError(f"main_head: vgg_mlp is timm's VGG head; {hp.backbone} is not a VGG (use gap_fc)")
        dropout = hp.get("vgg_dropout", 0.5)
        set_vgg_dropout(base, dropout)
        layers = hp.aux_layers if isinstance(hp.aux_layers, (list, tuple)) else ()
        return DeepSupervision(base, hp.num_classes, layers, hp.aux_classifier, dropout=dropout)

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
