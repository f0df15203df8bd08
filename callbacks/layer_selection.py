"""Data-driven choice of the deep-supervision layer, ``dds`` paper §2.3.

Before training, L_target = argmin_h ``|Obj − LERF_h|`` over the backbone's conv layers (Eq. in §2.3):

* LERF_h (§2.1) for the module's backbone at the datamodule's input size, mean over ``lerf_inits``
  He initialisations, thresholding the signed ∂q/∂p (the paper) or ``|∂q/∂p|`` (``lerf_gradient``) —
  computed once and cached as JSON under ``lerf_cache`` (the same file ``dermlab lerf --out``
  writes; the file name carries the gradient reading), so grids and resumed runs do not repeat it;
* Obj (§2.2): a number, ``objsize.json`` from ``dermlab objsize``, or a stage-1 classifier (a
  ``.ckpt`` or a finished grid cell folder, rebuilt with its head: VGG13's GAP + FC with ``main_head: gap_fc``)
  whose CAMs (Σ_k w_k^c f_k from that FC's weights) on ``samples`` training images give it.

The callback then attaches the auxiliary branch (``pl_module.attach_aux``), writes
``layer_selection.json`` in the run folder (reused on resume and at test time), logs Obj, the
choice and the whole LERF table as hyper-parameters and prints the table. It works with any module
that has ``attach_aux(layers)`` and a timm ``hparams.backbone`` (:class:`~callbacks.protocols.AttachesAuxiliary`)
and a data module with ``image_size`` and the training images (:class:`~callbacks.protocols.SelectionData`). Under
DDP every rank computes the same choice (fixed seeds, same images) and only rank 0 writes the files.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, cast

import lightning.pytorch as L
import torch
from torch import nn
from typing_extensions import override

from callbacks.protocols import AttachesAuxiliary, ImageSplits, SelectionData
from datamodules.base import ImageTableDataset
from dermlab.errors import DataError
from lightning_modules.nets.lerf import Gradient, choose_layer, paper_name
from lightning_modules.nets.lerf_table import lerf_table

log = logging.getLogger(__name__)


def stage_one_images(datamodule: ImageSplits, net: nn.Module) -> ImageTableDataset:
    """The un-augmented training images normalised as the stage-1 ``net``'s backbone expects."""
    from lightning_modules.normalisation import backbone_normalisation

    current, datamodule.normalisation = datamodule.normalisation, backbone_normalisation(net)
    try:
        return datamodule.dataset("train", augment=False, views=1)
    finally:
        datamodule.normalisation = current


def object_size_from(source: float | str, datamodule: ImageSplits, samples: int, seed: int,
                     device: torch.device) -> tuple[float, str]:
    """Obj (input pixels, §2.2) and where it came from: ``given`` (a number), the ``objsize.json`` read, or the
    stage-1 checkpoint whose CAMs on ``samples`` un-augmented training images (drawn with ``seed``, run on
    ``device``) give it.

    Raises:
        DataError: a ``.json`` that does not exist, or a run / checkpoint that cannot be used.
    """
    if isinstance(source, (int, float)):
        return float(source), "given"
    if str(source).endswith(".json"):
        path = Path(source)
        if not path.is_file():
            raise DataError(f"object size file '{path}' does not exist (dermlab objsize writes one).")
        return float(json.loads(path.read_text())["obj"]), str(path)
    from lightning_modules.nets.backbone import classifier_net_from_checkpoint, run_checkpoint
    from lightning_modules.nets.object_size import estimate_object_size

    checkpoint = run_checkpoint(source)
    net = classifier_net_from_checkpoint(checkpoint).to(device)
    images = stage_one_images(datamodule, net)
    obj, _, _ = estimate_object_size(net, images, samples, seed)
    return obj, str(checkpoint)


class LayerSelection(L.Callback):
    """Choose the deep-supervision layer from LERF and Obj and attach the auxiliary branch there.

    Args:
        object_size: Obj in input pixels, an ``objsize.json``, or a stage-1 checkpoint / run folder.
        lerf_inits: He initialisations averaged for LERF (paper: 20).
        samples: training images whose CAMs give Obj (evaluation transforms, no augmentation).
        lerf_cache: folder of cached LERF tables.
        seed: seed of the LERF initialisations and of the image sample.
        lerf_gradient: ``signed`` (the paper's ∂q/∂p > th) or ``abs`` (``|∂q/∂p|`` > th).
    """

    def __init__(self, object_size: float | str, lerf_inits: int = 20, samples: int = 200,
                 lerf_cache: str = "runs/lerf", seed: int = 0, lerf_gradient: Gradient = "signed"):
        self.object_size, self.lerf_inits, self.samples = object_size, lerf_inits, samples
        self.lerf_cache, self.seed, self.lerf_gradient = lerf_cache, seed, lerf_gradient
        self.selection: dict | None = None

    @override
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Choose the layer (or reuse the run folder's ``layer_selection.json``) and attach the branch there,
        before the optimiser is built; nothing when the module's ``net`` already has branches."""
        module = cast(AttachesAuxiliary, pl_module)
        if getattr(module.net, "layers", None):  # already attached (fit then test, or explicit layers)
            return
        record = Path(trainer.default_root_dir) / "layer_selection.json"
        source = self.object_size if isinstance(self.object_size, (int, float)) else str(self.object_size)
        if record.is_file() and self.reusable(json.loads(record.read_text()), source):
            self.selection = json.loads(record.read_text())
        else:
            self.selection = self.select(trainer, pl_module, source)
            if trainer.is_global_zero:
                record.parent.mkdir(parents=True, exist_ok=True)
                record.write_text(json.dumps(self.selection, indent=1))
        module.attach_aux([self.selection["layer"]], self.selection)
        for logger in trainer.loggers:
            logger.log_hyperparams({"dds/object_size": self.selection["object_size"],
                                    "dds/layer": paper_name(self.selection["layer"]),
                                    "dds/layer_lerf": self.selection["lerf"][self.selection["layer"]],
                                    "dds/lerf": {paper_name(k): v for k, v in self.selection["lerf"].items()}})

    def reusable(self, record: dict[str, Any], source: float | str) -> bool:
        """Whether a run folder's ``layer_selection.json`` was made with this Obj source and LERF reading."""
        return record.get("source_arg") == source and record.get("lerf_gradient", "abs") == self.lerf_gradient

    def select(self, trainer: L.Trainer, pl_module: L.LightningModule, source: float | str) -> dict[str, Any]:
        """Compute LERF (or read its cache) and Obj, choose argmin_h ``|Obj − LERF_h|`` and log the table; returns
        the record ``layer_selection.json`` holds (layer, Obj and its origin, the LERF table, the settings)."""
        datamodule = cast(SelectionData, trainer.datamodule)
        size = datamodule.image_size
        lerfs = lerf_table(pl_module.hparams.backbone, size, self.lerf_inits, self.seed, self.lerf_cache,
                           self.lerf_gradient)
        obj, origin = object_size_from(source, datamodule, self.samples, self.seed, trainer.strategy.root_device)
        layer = choose_layer(lerfs, obj)
        lines = [f"{paper_name(name):>18s}  LERF {value:7.2f}  |Obj−LERF| {abs(obj - value):7.2f}"
                 + ("  ← chosen" if name == layer else "") for name, value in lerfs.items()]
        log.warning("dds layer selection (%s at %d px, %s ∂q/∂p): Obj = %.2f (%s) → %s\n%s",
                    pl_module.hparams.backbone, size, self.lerf_gradient, obj, origin, paper_name(layer),
                    "\n".join(lines))
        return {"layer": layer, "paper_name": paper_name(layer), "object_size": obj, "object_size_from": origin,
                "source_arg": source, "image_size": size, "backbone": pl_module.hparams.backbone,
                "lerf_gradient": self.lerf_gradient, "lerf": lerfs}

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"selection": self.selection}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.selection = state_dict.get("selection")
