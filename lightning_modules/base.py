"""The classification LightningModule every method of the suite builds on.

It owns what all papers share: a timm backbone (local pretrained weights or random init),
cross-entropy, softmax probabilities, every metric (torchmetrics, see :mod:`dermlab.metrics.logged`)
logged per split as ``<split>/<metric>``, ROC / confusion-matrix state and per-image predictions for the plot
callback, the per-image test predictions file (:mod:`dermlab.files.predictions`), optional test-time augmentation
(:mod:`dermlab.imaging.tta`) and temperature scaling (:mod:`dermlab.stats.calibration`), and the optimiser / scheduler
injected by LightningCLI. A method subclass overrides
its network recipe (``net_builder``, ``net_arguments``) and/or ``compute_loss`` and adds only what its paper adds.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import lightning.pytorch as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from torch.optim import Optimizer
from typing_extensions import override

from datamodules.taxonomies import ClassMapping
from dermlab.errors import DataError
from dermlab.files.checkpoints import weights_fingerprint
from dermlab.files.predictions import FILENAME as PREDICTIONS_FILENAME
from dermlab.files.predictions import write_predictions
from dermlab.files.test_record import write_test_record
from dermlab.metrics.logged import classification_metrics, curve_metrics, metric_input, metric_names
from lightning_modules.calibration import TemperatureScaling
from lightning_modules.evaluation import EVAL_SPLITS, SplitEvaluation
from lightning_modules.losses import ClassWeighting, ClassWeightNormalise, class_weights, per_sample_loss
from lightning_modules.metadata import MetadataInput
from lightning_modules.nets.acceleration import apply_speed_options
from lightning_modules.nets.fusion import Fusion, evaluated_probabilities, view_probabilities
from lightning_modules.nets.recipes import build_from_recipe
from lightning_modules.normalisation import InputNormalisation
from lightning_modules.predictions import GatheredPredictions, SplitPredictions, scored_rows
from lightning_modules.reproducibility import EpochSeeding

if TYPE_CHECKING:
    from lightning_modules.losses import SampleSelection  # only the ``curriculum`` attribute's annotation

log = logging.getLogger(__name__)


class LesionClassifier(InputNormalisation, EpochSeeding, SplitEvaluation, TemperatureScaling, MetadataInput,
                      L.LightningModule):
    """Image-level skin-lesion classifier on a timm backbone.

    Args:
        backbone: timm model name (e.g. ``resnet18``, ``vgg13_bn``, ``test_resnet``).
        num_classes: number of outputs; linked from the datamodule by the CLI.
        class_names: names used in per-class metrics and plots; linked from the datamodule.
        pretrained_weights: local weights file for the backbone, ``pkg:NAME`` (weights of an installed package,
            e.g. ``pkg:efficientnet-lite0``), or None for random init.
        drop_rate: dropout before the classifier.
        optimizer: optimiser factory; None means Adam(lr=1e-3).
        scheduler: LR scheduler factory or None. ReduceLROnPlateau watches ``monitor``.
        monitor: the validation metric a plateau scheduler follows (``None`` where nothing may follow one: a
            split without validation images runs a fixed schedule).
        backbone_args: extra constructor arguments of the backbone (e.g. ``{normalisation: channel}``
            for ``arl_cnn50``).
        class_weighting: ``inverse`` ((N/N_c)^k, ``patch`` §II-F) or ``effective_number`` (``weighting`` §3.2)
            class weights in the loss, from the datamodule's training counts (see
            :mod:`lightning_modules.losses`); None for none.
        class_weight_power: the exponent k of ``inverse``.
        class_weight_normalise: ``none`` (the weights as printed, e.g. ``weighting`` Eq. 7–8; the ``weighting``
            configs set it) or ``sum_to_classes`` (scaled to sum to C; the suite's default, which keeps other
            papers' runs as they were). Only the scale differs; it matters under SGD (see
            :mod:`lightning_modules.losses`).
        loss: ``ce`` (cross-entropy) or ``focal`` (``weighting`` Eq. 6, with ``focal_gamma``).
        focal_gamma: γ of the focal loss.
        channels_last: store the network's 4-D weights and feed its images in channels-last (NHWC) layout, the
            layout tensor-core convolutions read (``--model.init_args.channels_last true``); results change only
            by float round-off (see :mod:`lightning_modules.nets.acceleration`).
        compile: ``true`` compiles the network in place with ``torch.compile`` (``net.compile()``: the
            checkpoint's keys stay those of the eager network, so checkpoints load either way); a dict gives
            torch.compile's keyword arguments (``{mode: max-autotune}``, ``{backend: aot_eager}``). The default
            inductor backend needs a C++ compiler: without one, construction raises a DataError saying so. A
            checkpoint of a compiled run loads eagerly with ``load_from_checkpoint(path, compile=False)``. Only
            calls of ``net(...)`` are compiled: steps that call other methods of the net (the triplet method's
            ``embed``, the hierarchical one's ``node_log_probs``) stay eager.
        tta: test-time augmentation at validation, test and predict time: ``none``, or ``dihedral``: the softmax
            probabilities averaged over the 8 flips / transposes of D4 (the SIIM-ISIC 2020 winners' recipe;
            :mod:`dermlab.imaging.tta`), on top of any (B, V, C, H, W) view averaging. Needs square images.
        calibrate: ``none``, or ``temperature``: temperature scaling (Guo et al. 2017, §4.2;
            :mod:`dermlab.stats.calibration`). At the end of every validation epoch of ``fit`` a scalar T > 0 is fitted
            to that epoch's validation predictions (NLL, L-BFGS on log T) and kept in the ``temperature`` buffer,
            so each checkpoint holds the T of its own weights; test and predict then use softmax(log p / T).
            Validation metrics stay uncalibrated (T is fitted on them), and the test set never touches T.
            ``val/temperature`` is logged. Changes ECE / NLL only: argmax, and for two classes AUC, stay as they
            were. A checkpoint tested with ``calibrate: none`` gives the uncalibrated numbers.
        metadata_branch: options of the patient-metadata branch (``hidden``, ``fusion``, ``dropout``,
            ``field_dropout``; defaults: the ISIC 2019 winners', :mod:`lightning_modules.nets.metadata_branch`). The
            branch is attached when the data gives metadata (``data.init_args.metadata_fields``,
            :mod:`lightning_modules.metadata`); without it these options do nothing.
        metadata_encoding: the encoding of the metadata fields, set from the data at set-up and saved with the
            checkpoint (not for the user to set).

    Mixed precision is the Trainer's (``--trainer.precision bf16-mixed``), not the module's.

    The training loss is the batch mean of w_j · ℓ_j (``weighting`` Eq. 3): w_j is the product of the class
    weight, the data set's per-sample weight (e.g. diagnosis-guided) and, when a curriculum callback
    (:mod:`callbacks.curriculum`, SPL / OHEM) is attached, its 0/1 selection.
    """

    def __init__(
        self,
        backbone: str = "resnet18",
        num_classes: int = 2,
        class_names: Sequence[str] | None = None,
        pretrained_weights: str | None = None,
        drop_rate: float = 0.0,
        optimizer: OptimizerCallable | None = None,
        scheduler: LRSchedulerCallable | None = None,
        monitor: str | None = "val/auc",
        backbone_args: dict | None = None,
        class_weighting: ClassWeighting | None = None,
        class_weight_power: float = 1.0,
        class_weight_normalise: ClassWeightNormalise = "sum_to_classes",
        loss: Literal["ce", "focal"] = "ce",
        focal_gamma: float = 1.0,
        channels_last: bool = False,
        compile: bool | dict = False,
        tta: Literal["none", "dihedral"] = "none",
        calibrate: Literal["none", "temperature"] = "none",
        metadata_branch: dict[str, Any] | None = None,
        metadata_encoding: dict[str, Any] | None = None,
    ):
        if tta not in ("none", "dihedral"):
            raise ValueError(f"tta must be none or dihedral, got {tta!r}")
        if calibrate not in ("none", "temperature"):
            raise ValueError(f"calibrate must be none or temperature, got {calibrate!r}")
        super().__init__()
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        self.optimizer, self.scheduler = optimizer, scheduler  # under the CLI hparams hold dicts, not callables
        self.class_names = tuple(class_names or (str(i) for i in range(num_classes)))
        if len(self.class_names) != num_classes:
            raise ValueError(f"{len(self.class_names)} class names for {num_classes} classes")
        self.monitor = monitor
        self.net = apply_speed_options(self.build_net(), channels_last, compile)
        self.metrics = nn.ModuleDict({s: classification_metrics(self.class_names) for s in EVAL_SPLITS})
        self.curves = nn.ModuleDict({s: curve_metrics(num_classes) for s in EVAL_SPLITS})
        self.register_buffer("class_weights", torch.ones(num_classes), persistent=False)
        self.register_buffer("temperature", torch.ones(()))  # calibrate: temperature
        self.predictions = {split: SplitPredictions() for split in EVAL_SPLITS}
        # set by a curriculum callback: picks the samples that count in each training batch
        self.curriculum: SampleSelection | None = None
        self.test_mapping: ClassMapping | None = None  # when the test split is another data set's (use_test_mapping)

    @override
    def setup(self, stage: str) -> None:
        """Class weights from the datamodule's training counts (recomputed each run, never stale), and the test
        split's class mapping when it is another data set's (``test_on``)."""
        self.use_test_mapping(getattr(getattr(self.trainer, "datamodule", None), "test_mapping", None))
        counts = getattr(getattr(self.trainer, "datamodule", None), "class_counts", None)
        if self.hparams.class_weighting and counts is not None:
            hp = self.hparams
            weights = class_weights(counts, hp.class_weighting, hp.class_weight_power, hp.class_weight_normalise)
            self.class_weights.copy_(weights.to(self.class_weights.device))
            log.info("class weights (%s, k=%g, normalise %s): %s", hp.class_weighting, hp.class_weight_power,
                     hp.class_weight_normalise,
                     ", ".join(f"{n} {w:.4g}" for n, w in zip(self.class_names, weights.tolist(), strict=True)))
        self.setup_metadata()

    def use_test_mapping(self, mapping: ClassMapping | None) -> None:
        """Score the test split through ``mapping`` (:class:`datamodules.taxonomies.ClassMapping`, cross-data-set
        testing): the (B, C) test probabilities are merged onto its evaluation classes (summed per evaluation
        class, :meth:`~datamodules.taxonomies.ClassMapping.merge`) before the metrics, curves and the predictions
        file, and the test loss is the plain NLL of the merged probabilities (class weights and method losses
        belong to the training classes). None, or a mapping that changes nothing, scores the model's own classes.
        Test metrics keep their ``test/`` names; ``splits/audit.json`` and the grid's ``result.json`` say which data
        set they are on.

        Raises:
            DataError: the mapping's source classes are not this model's classes.
        """
        mapping = None if mapping is None or mapping.identity else mapping
        if mapping is not None and tuple(mapping.source_classes) != tuple(self.class_names):
            raise DataError(f"the test class mapping {mapping.name} starts from {list(mapping.source_classes)}, but "
                            f"this model's classes are {list(self.class_names)}")
        if mapping == self.test_mapping:
            return
        self.test_mapping = mapping
        device = self.class_weights.device
        self.metrics["test"] = classification_metrics(self.test_class_names).to(device)
        self.curves["test"] = curve_metrics(len(self.test_class_names)).to(device)
        if mapping is not None:
            log.info("test split scored through %s on %s", mapping.name,
                     "; ".join(f"{e}: {how}" for e, how in mapping.rows()))

    @property
    def test_class_names(self) -> tuple[str, ...]:
        """The classes the test split is scored on, the test mapping's evaluation classes, else the model's."""
        return tuple(self.test_mapping.classes) if self.test_mapping is not None else tuple(self.class_names)

    def split_class_names(self, split: str) -> tuple[str, ...]:
        """The classes ``split``'s metrics, curves and predictions are on."""
        return self.test_class_names if split == "test" else tuple(self.class_names)

    # --- what a method may override --------------------------------------------------------
    #: The network builder of this method (a key of :data:`lightning_modules.nets.recipes.BUILDERS`).
    net_builder: ClassVar[str] = "timm"

    def net_arguments(self) -> dict[str, Any]:
        """The :attr:`net_builder`'s arguments, from the hyper-parameters: ``backbone``, ``num_classes``,
        ``pretrained_weights``, ``drop_rate``, ``backbone_args``. A method adds its own."""
        hp = self.hparams
        return {"backbone": hp.backbone, "num_classes": hp.num_classes, "pretrained_weights": hp.pretrained_weights,
                "drop_rate": hp.drop_rate, "backbone_args": dict(hp.backbone_args or {})}

    def net_recipe(self) -> dict[str, Any]:
        """``{"builder", "arguments"}`` and, with a metadata branch, ``"metadata"``: how
        :mod:`lightning_modules.nets.recipes` builds ``net`` (an exported package rebuilds it from this, without
        Lightning; :mod:`lightning_modules.nets.package`)."""
        metadata = self.metadata_recipe()
        recipe = {"builder": self.net_builder, "arguments": self.net_arguments()}
        return recipe if metadata is None else {**recipe, "metadata": metadata}

    def build_net(self) -> nn.Module:
        """The network ``net``, built from :meth:`net_recipe` (by default the timm model ``backbone`` with
        ``num_classes`` outputs, ``pretrained_weights``, ``drop_rate`` and ``backbone_args``,
        :func:`~lightning_modules.nets.backbone.create_backbone`). It runs in ``__init__``, after
        ``save_hyperparameters``."""
        recipe = self.net_recipe()
        return build_from_recipe(recipe["builder"], recipe["arguments"], metadata=recipe.get("metadata"))

    def sample_weights(self, batch: dict[str, Any]) -> torch.Tensor:
        """Each sample's loss weight: its class weight times the batch's ``weight`` (diagnosis-guided etc.)."""
        weights = self.class_weights[batch["label"]]
        return weights if batch.get("weight") is None else weights * batch["weight"].to(weights.dtype)

    def per_sample_loss(self, logits: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        """ℓ_j of every sample: cross-entropy or focal loss (a method may override, e.g. a sum over levels)."""
        return per_sample_loss(logits, batch["label"], self.hparams.loss, self.hparams.focal_gamma)

    def compute_loss(self, logits: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        """(1/M) Σ_j w_j ℓ_j over the batch (Eq. 3 of ``weighting``); in training a curriculum may zero some w_j."""
        per_sample = self.per_sample_loss(logits, batch)
        weights = self.sample_weights(batch).to(per_sample.dtype)
        if self.training and self.curriculum is not None:
            weights = weights * self.curriculum.select(per_sample.detach(), batch["label"], self)
        return (per_sample * weights).mean()

    # --- shared steps --------------------------------------------------------------------
    @override
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)

    @override
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss = self.compute_loss(self(batch["image"]), batch)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(batch["label"]))
        return loss

    #: How the network's views / crops become one prediction (:data:`lightning_modules.nets.fusion.Fusion`).
    fusion: ClassVar[Fusion] = "views"

    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """Class probabilities of (B, C, H, W) images, or of (B, V, C, H, W) views averaged per image
        (the ``arl`` paper's 9 test patches, the ``patch`` paper's ordered crops):
        :func:`~lightning_modules.nets.fusion.view_probabilities`."""
        return view_probabilities(self, images)

    def evaluated_probabilities(self, images: torch.Tensor, split: str) -> torch.Tensor:
        """(B, C) probabilities as validation (``split='val'``), test (``'test'``) and predict (``'predict'``) see
        them: :meth:`probabilities`, averaged over D4 when ``tta: dihedral``, then
        :meth:`~lightning_modules.calibration.TemperatureScaling.calibrated`
        (:func:`~lightning_modules.nets.fusion.evaluated_probabilities`)."""
        return evaluated_probabilities(self.probabilities, images, self.hparams.get("tta", "none") == "dihedral",
                                       self.applied_temperature(split))

    def prediction_recipe(self) -> dict[str, Any]:
        """How an exported package turns this network's outputs into the probabilities this module tests with:
        ``fusion``, ``crop_fusion`` (crops only), ``tta`` (``dihedral`` or ``none``) and ``temperature`` (the
        fitted T with ``calibrate: temperature``, else None); see :mod:`lightning_modules.nets.fusion`."""
        temperature = self.applied_temperature("test")
        return {"fusion": self.fusion, "crop_fusion": None, "tta": self.hparams.get("tta", "none"),
                "temperature": None if temperature is None else float(temperature)}

    def _evaluation_step(self, batch: dict[str, Any], split: str, probabilities: torch.Tensor | None = None) -> None:
        """Metrics, curves and per-image predictions of one batch. ``probabilities`` (B, C), when a method
        computes them itself, are the model's own (before temperature scaling, which is applied here)."""
        probabilities = (self.evaluated_probabilities(batch["image"], split) if probabilities is None
                         else self.calibrated(probabilities, split))
        mapped = split == "test" and self.test_mapping is not None
        if mapped:  # another data set's test split: onto the evaluation classes
            probabilities = self.test_mapping.merge(probabilities)
        if "image_id" in batch:
            self.predictions[split].add(batch["image_id"], batch["label"], probabilities, batch.get("scored"))
        probabilities, batch = scored_rows(probabilities, batch)
        if len(batch["label"]) == 0:
            return
        log_p = probabilities.clamp_min(1e-12).log()
        # CE of the (averaged) prediction; on mapped classes the plain NLL (no class weights of the training classes)
        loss = nn.functional.nll_loss(log_p, batch["label"]) if mapped else self.compute_loss(log_p, batch)
        self.log(f"{split}/loss", loss, on_epoch=True, sync_dist=True, batch_size=len(batch["label"]))
        self.metrics[split].update(metric_input(probabilities), batch["label"])
        self.curves[split].update(metric_input(probabilities), batch["label"])

    @override
    def on_validation_epoch_start(self) -> None:
        self.curves["val"].reset()
        self.predictions["val"].reset()

    @override
    def on_test_epoch_start(self) -> None:
        self.curves["test"].reset()
        self.predictions["test"].reset()
        if self.hparams.get("calibrate", "none") != "temperature" and float(self.temperature) != 1.0:
            log.warning("this model holds a temperature T = %.4g fitted on its validation set, not applied "
                        "(calibrate: none); add --model.init_args.calibrate temperature to apply it",
                        float(self.temperature))

    def gathered_predictions(self, split: str) -> GatheredPredictions | None:
        """This epoch's per-image predictions of ``split`` from every DDP rank (call it on every rank)."""
        return self.predictions[split].gathered()

    @override
    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        trainer = self._trainer
        if (self.hparams.get("calibrate", "none") == "temperature" and trainer is not None
                and trainer.state.fn == "fit" and not trainer.sanity_checking):
            self.fit_temperature()

    @override
    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()
        self.write_test_predictions()

    def write_test_predictions(self) -> Path | None:
        """``<trainer.default_root_dir>/predictions_test.csv`` (format: :mod:`dermlab.files.predictions`) on rank 0,
        and beside it ``predictions_test.json``: the checkpoint tested and the evaluation preprocessing
        (:mod:`dermlab.files.test_record`)."""
        trainer = self._trainer
        if trainer is None:
            return None
        predictions = self.gathered_predictions("test")
        if predictions is None or not trainer.is_global_zero:
            return None
        path = write_predictions(Path(trainer.default_root_dir) / PREDICTIONS_FILENAME, predictions.ids,
                                 predictions.targets.numpy(), predictions.probabilities.numpy(),
                                 self.test_class_names, predictions.scored.numpy())
        log.info("wrote %d per-image test predictions to %s", len(predictions.ids), path)
        data = getattr(trainer, "datamodule", None)
        preprocessing = getattr(data, "evaluation_preprocessing", None)
        test_on = getattr(data, "test_on", None)
        write_test_record(trainer.default_root_dir, trainer.ckpt_path, preprocessing() if preprocessing else None,
                          None if data is None else {
                              "name": getattr(data, "config_name", None), "class": type(data).__name__,
                              "root": str(Path(data.root).resolve()) if getattr(data, "root", None) else None,
                              "test_on": None if test_on is None else getattr(test_on, "config_name", None)},
                          weights_fingerprint(self.state_dict()))
        return path

    @override
    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Checkpoints from before temperature scaling have no ``temperature``: they load with T = 1."""
        super().on_load_checkpoint(checkpoint)
        state = checkpoint.get("state_dict")
        if state is not None and "temperature" not in state:
            state["temperature"] = torch.ones(())

    def logged_metric_names(self) -> list[str]:
        """Every scalar this module logs (grids check their requested metrics against it before training)."""
        names = ["train/loss", *(f"{split}/loss" for split in EVAL_SPLITS)]
        for split in EVAL_SPLITS:
            names += [f"{split}/{name}" for name in metric_names(self.split_class_names(split))]
        if self.hparams.get("calibrate", "none") == "temperature":
            names.append("val/temperature")
        return names

    @override
    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        return {"image_id": batch["image_id"], "probabilities": self.evaluated_probabilities(batch["image"],
                                                                                             "predict")}

    @override
    def configure_optimizers(self) -> Optimizer | dict[str, Any]:
        """``optimizer`` (default Adam, lr 1e-3) over all parameters, with ``scheduler`` (following ``monitor``)
        when one is set."""
        optimizer = (self.optimizer or (lambda params: torch.optim.Adam(params, lr=1e-3)))(self.parameters())
        if self.scheduler is None:
            return optimizer
        scheduler = self.scheduler(optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": self.monitor}}
