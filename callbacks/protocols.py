"""What the suite's callbacks read from the LightningModule and the data module, written down as Protocols.

Lightning hands every hook a :class:`~lightning.pytorch.LightningModule` and keeps the data module in
``trainer.datamodule``; a callback that reads more than Lightning's own attributes (``net``, ``class_names``,
``attach_aux``, ``submission``, ...) names that need here, and the callback's docstring names the Protocol. They
are structural: :class:`~lightning_modules.base.LesionClassifier`,
:class:`~lightning_modules.segmentation.LesionSegmenter` and :class:`~datamodules.base.SkinDataModule` (and their
subclasses) satisfy those that apply to them without inheriting from anything here. A callback reads a need
through :func:`typing.cast` (the module is assumed to offer it: a missing attribute raises ``AttributeError``
where it is read), or, where it looks before reading (``hasattr``, or ``getattr`` with a default for a method),
through ``isinstance`` on a ``runtime_checkable`` Protocol; an optional attribute with a default is still read with
``getattr``.

Run-time checks stay on methods: ``isinstance`` with a Protocol looks each member up, from Python 3.12 with
``inspect.getattr_static``, which does not see what :class:`torch.nn.Module` keeps in ``_modules`` /
``_parameters`` / ``_buffers`` (``net``, ``curves``), so a Protocol with such a member would never match there.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
import torch
from torch import nn

from datamodules.base import ImageTable, ImageTableDataset
from datamodules.transforms import Normalisation
from lightning_modules.losses import SampleSelection
from lightning_modules.predictions import GatheredPredictions


# --- the LightningModule ------------------------------------------------------------------------------------------
class ClassNames(Protocol):
    """A module that names its outputs: classes of a classifier, mask channels of a segmenter (titles, labels)."""

    @property
    def class_names(self) -> Sequence[str]:
        """One name per output, in output order."""
        ...


@runtime_checkable
class SplitClassNames(Protocol):
    """A module whose scored classes may differ per split: another data set's evaluation classes on a ``test_on``
    test split (:meth:`lightning_modules.base.LesionClassifier.split_class_names`). Optional: a module without it
    is scored on its :class:`ClassNames`."""

    def split_class_names(self, split: str) -> Sequence[str]:
        """The classes ``split``'s metrics, curves and predictions are on."""
        ...


class WithNet(Protocol):
    """A module that trains one plain network (:mod:`lightning_modules.nets`), ``net``: what the CAM, crop-weight,
    layer-selection and attention-map callbacks run. Never checked at run time (a submodule, see the module
    docstring)."""

    @property
    def net(self) -> nn.Module:
        """The network the module's ``forward`` runs."""
        ...


class InputStatistics(Protocol):
    """A module that says how its inputs were normalised, so that a figure shows the images as they were
    (:class:`lightning_modules.normalisation.InputNormalisation`)."""

    @property
    def input_normalisation(self) -> Normalisation:
        """The (mean, std) the data module normalised the images with (the backbone's pretrained statistics)."""
        ...


class Probabilities(Protocol):
    """A module that turns a batch of images into per-output probabilities."""

    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """Class probabilities (B, C) of a classifier, mask probabilities (B, K, H, W) of a segmenter."""
        ...


@runtime_checkable
class GathersPredictions(Protocol):
    """A module that keeps its per-image predictions of an evaluation epoch (:mod:`lightning_modules.predictions`):
    the reliability diagram of :class:`~callbacks.plots.ClassificationPlots`. Optional."""

    def gathered_predictions(self, split: str) -> GatheredPredictions | None:
        """This epoch's predictions of ``split`` from every DDP rank (a collective: every rank calls it)."""
        ...


class ClassificationCurves(ClassNames, Protocol):
    """:class:`~callbacks.plots.ClassificationPlots`: ``curves[split]``, a torchmetrics ``MetricCollection`` with
    ``roc`` (ROC) and ``confusion`` (ConfusionMatrix) that the module fills during the split's epoch (and the
    callback computes on every rank). Optionally :class:`GathersPredictions` and :class:`SplitClassNames`."""

    @property
    def curves(self) -> nn.ModuleDict:
        """``{split: MetricCollection(roc=..., confusion=...)}`` for ``val`` and ``test``."""
        ...


class CAMModule(WithNet, ClassNames, InputStatistics, Protocol):
    """:class:`~callbacks.plots.CAMGrid` and :class:`~callbacks.branch_cams.BranchCAMs`: ``net`` offers timm's
    ``forward_features`` / ``forward_head`` (:func:`lightning_modules.nets.cam.class_activation_maps`), and the
    images are shown denormalised with ``input_normalisation``. Optionally :class:`SplitClassNames` (the truths'
    names on a ``test_on`` test split)."""


class AuxiliaryBranches(Protocol):
    """The ``net`` of a deeply supervised module (:class:`~lightning_modules.nets.deep_supervision.DeepSupervision`),
    whose auxiliary branches :class:`~callbacks.branch_cams.BranchCAMs` draws (``dds`` Fig. 4); a net whose
    ``layers`` is missing or empty has none."""

    @property
    def layers(self) -> Sequence[str]:
        """The conv layers (module names) that carry a branch."""
        ...

    def branch(self, layer: str) -> nn.Module:
        """The auxiliary classifier at ``layer``."""
        ...

    def branch_features(self, images: torch.Tensor, layer: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The activation the branch at ``layer`` reads, (B, C, h, w), and the branch's logits on it, (B, classes)."""
        ...


class WeighsCrops(Protocol):
    """The ``net`` of a patch-attention module (:class:`~lightning_modules.nets.patch_attention.CropNet`)."""

    def crop_weights(self) -> torch.Tensor | None:
        """The attention weights (N_B, N_C) of the latest forward pass, None without an attention block."""
        ...


class CropWeightsModule(WithNet, ClassNames, Probabilities, Protocol):
    """:class:`~callbacks.crop_weights.CropWeightsFigure` (``patch`` Fig. 4): ``net`` is :class:`WeighsCrops`,
    ``probabilities`` takes (N_B, N_C, C, H, W) crops."""


class CurriculumModule(Protocol):
    """:class:`~callbacks.curriculum.Curriculum` (SPL / OHEM, ``weighting`` §3.3): the callback sets itself as the
    module's ``curriculum`` for the fit; in training, the module's loss computes the per-sample losses ℓ_j, asks
    ``curriculum.select(losses, labels, module)`` for their 0/1 selection and multiplies the per-sample weights by
    it (:meth:`~lightning_modules.base.LesionClassifier.compute_loss`). The callback logs the selected samples'
    final weights, the selection times ``sample_weights(batch)``."""

    curriculum: SampleSelection | None

    def sample_weights(self, batch: dict[str, Any]) -> torch.Tensor:
        """Each sample's loss weight (B,) before the curriculum: its class weight times the batch's ``weight``."""
        ...


class AttachesAuxiliary(WithNet, Protocol):
    """:class:`~callbacks.layer_selection.LayerSelection` (``dds`` §2.3): a module whose ``hparams.backbone`` is a
    timm model name (its LERF table is computed on it) and that grows an auxiliary branch at the chosen layer before
    its optimiser is built. A ``net`` whose ``layers`` is non-empty already has its branch (nothing is chosen)."""

    def attach_aux(self, layers: list[str], selection: dict[str, Any] | None = None) -> None:
        """Add a branch at each of ``layers`` (conv module names); ``selection`` is the record of the choice."""
        ...


class PretrainedModules(Protocol):
    """:class:`~callbacks.segmentation.FreezeEncoder`: the modules it keeps frozen for the first epochs."""

    def pretrained_modules(self) -> list[nn.Module]:
        """The pre-trained part of the encoder (without the randomly initialised SE blocks)."""
        ...


@runtime_checkable
class RefinedMasks(Protocol):
    """A segmenter's post-processing (:meth:`~lightning_modules.segmentation.LesionSegmenter.refined`):
    :class:`~callbacks.segmentation.SegmentationFigure` draws masks only for a module that has it."""

    def refined(self, images: torch.Tensor, probabilities: torch.Tensor) -> torch.Tensor:
        """(B, K, H, W) masks from the images and their mask probabilities (0/1 when post-processing is set)."""
        ...


class SegmentationFigureModule(RefinedMasks, Probabilities, Protocol):
    """:class:`~callbacks.segmentation.SegmentationFigure`: the (B, K, H, W) mask probabilities, then refined."""


# --- the data module ----------------------------------------------------------------------------------------------
class ImageSplits(Protocol):
    """A data module that serves the images of a split through its pipelines (:class:`datamodules.base.SkinDataModule`);
    items are dicts with ``image`` (C, H, W), or (N_C, C, h, w) crops, and ``label`` / ``mask`` / ``image_id``."""

    normalisation: Normalisation

    def dataset(self, split: str, augment: bool | None = None, views: int | None = None) -> ImageTableDataset:
        """The images of ``split``; ``augment=False``: the evaluation pipeline; ``views=1``: one whole image."""
        ...


class CropData(ImageSplits, Protocol):
    """:class:`~callbacks.crop_weights.CropWeightsFigure`: ``eval_crops`` ordered crops of side ``crop_size`` per
    evaluation image (0: no crops, and no figure)."""

    eval_crops: int
    crop_size: int


class SelectionData(ImageSplits, Protocol):
    """:class:`~callbacks.layer_selection.LayerSelection`: the input side ``image_size`` (px) LERF is measured at;
    a stage-1 classifier's CAMs on the un-augmented training images give Obj (``normalisation`` is swapped for
    that network's while they are read)."""

    image_size: int


class BatchSize(Protocol):
    """:class:`~callbacks.curriculum.Curriculum`: M of Eq. 9 for a full batch (``curriculum/m_full_batch``)."""

    batch_size: int


class SubmissionData(Protocol):
    """:class:`~callbacks.submission.SubmissionWriter`: the predicted split and its official submission table.
    Optionally ``tables`` (``{split: ImageTable}``): the images a submission must hold."""

    predict_split: str

    def submission(self, ids: list[str], probabilities: np.ndarray) -> pd.DataFrame:
        """The submission table of ``ids`` and their (N, C) probabilities: an id column, then one per class."""
        ...


class MaskFileNames(Protocol):
    """:class:`~callbacks.segmentation.MaskWriter`: the official file names of an image's predicted masks.
    Optionally ``predict_split`` (default ``test``) and :class:`OfficialMasks`."""

    def mask_file_names(self, image_id: str) -> list[str]:
        """One file name per mask channel (``ISIC_0000000_segmentation.png`` for ISIC 2018 task 1)."""
        ...


@runtime_checkable
class OfficialMasks(Protocol):
    """A data module that knows where a split's official ground-truth masks are, which
    :class:`~callbacks.segmentation.MaskWriter` scores its full-size masks against. Optional."""

    def official_truth_folder(self, split: str) -> Path | None:
        """The folder holding exactly ``split``'s official masks, None when there is none."""
        ...


@runtime_checkable
class SplitSource(Protocol):
    """A data module that may take a split's images from another (``test_on``, :mod:`datamodules.cross`):
    :class:`~callbacks.subgroups.SubgroupMetrics` reads metadata and lesion masks there. Optional."""

    def split_source(self, split: str) -> object:
        """The data module whose files hold ``split``'s images (this one unless ``split`` is a ``test_on`` test)."""
        ...


@runtime_checkable
class SubgroupMetadata(Protocol):
    """A data module with per-image attributes (sex, age band, body site, ...) for the subgroup metrics. Optional:
    without it only the skin-tone category is grouped on."""

    def metadata(self, split: str) -> pd.DataFrame:
        """One text column per attribute, indexed by image id, ``unknown`` where a value is missing."""
        ...


class LesionMasks(Protocol):
    """A data module that may ship lesion masks, which the skin-tone proxy (ITA) leaves out of the skin."""

    def lesion_masks(self, split: str) -> dict[str, Path]:
        """The mask file of each image of ``split`` that has one (none: ``{}``)."""
        ...


@runtime_checkable
class SplitTable(Protocol):
    """A data module that lists a split's images (:meth:`~datamodules.base.SkinDataModule.table`):
    :class:`~callbacks.subgroups.SubgroupMetrics` reads them for the skin tones (none without it); its split source
    must then also be :class:`LesionMasks`."""

    def table(self, split: str) -> ImageTable:
        """The validated table of ``split`` (``ids``, ``paths``, ``labels``, ...)."""
        ...
