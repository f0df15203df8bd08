"""Lesion segmentation of the ``isic2018`` paper (002) §1: the shared segmentation module, SegAN and the ensemble.

* :class:`LesionSegmenter` — any smp network (:func:`lightning_modules.nets.segmentation.build_segmentor`)
  trained with pixel-wise cross-entropy: the paper's **DeepLabV3+** baseline. It owns what every segmentation
  method shares: the per-image challenge scores (:mod:`dermlab.metrics.segmentation`, logged as
  ``<split>/threshold_jaccard`` etc.), the optional post-processing on test / predict
  (:mod:`dermlab.imaging.postprocess`), and the optional soft-Dice and hard-mining auxiliary losses.
* :class:`SegAN` — the SE-VGG U-Net segmentor S against the critic C (Eq. 1–2), manual optimisation.
* :class:`SegmentationEnsemble` — the mean probability map of several finished runs (the paper's 4 SegAN +
  2 DeepLabV3+), then post-processing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler
from typing_extensions import override

from datamodules.transforms import Normalisation, denormalise, renormalise
from dermlab.errors import DataError
from dermlab.imaging.postprocess import PostProcess, postprocess
from dermlab.metrics.segmentation import SegmentationScores
from lightning_modules.evaluation import EVAL_SPLITS, SplitEvaluation
from lightning_modules.nets.backbone import checkpoint_net_state, run_checkpoint
from lightning_modules.nets.segan_critic import SegANCritic, multiscale_l1
from lightning_modules.nets.segmentation import Architecture, backbone_modules, build_segmentor, encoder_of
from lightning_modules.normalisation import InputNormalisation, backbone_normalisation
from lightning_modules.reproducibility import EpochSeeding
from lightning_modules.schedules import fit_to_run

NET_ARGS = ("architecture", "encoder", "num_classes", "se_blocks", "decoder_channels")
log = logging.getLogger(__name__)


def soft_dice_loss(probabilities: torch.Tensor, masks: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 − soft Dice per image (and channel): (N, K) from (N, K, H, W) maps."""
    intersection = (probabilities * masks).sum((2, 3))
    return 1 - (2 * intersection + eps) / (probabilities.sum((2, 3)) + masks.sum((2, 3)) + eps)


def images_uint8(images: torch.Tensor, normalisation: Normalisation) -> np.ndarray:
    """(N, H, W, 3) uint8 images from a batch normalised with ``normalisation`` (the CRF's colours)."""
    return np.round(denormalise(images, normalisation) * 255).astype(np.uint8)


class LesionSegmenter(InputNormalisation, EpochSeeding, SplitEvaluation, L.LightningModule):
    """A segmentation network trained with pixel-wise cross-entropy (binary per mask channel).

    Args:
        architecture: ``unet`` or ``deeplabv3plus`` (segmentation-models-pytorch).
        encoder: smp encoder name (``vgg19_bn``, ``resnet101``, …; ``vgg_tiny_bn`` / ``resnet18`` on the CPU).
        se_blocks: SE blocks on the VGG encoder's stages (the SegAN segmentor).
        decoder_channels: U-Net decoder widths (5 values) or DeepLabV3+ width (one); None: smp's defaults.
        num_classes: mask channels (1 lesion mask for task 1, 5 attributes for task 2); linked from the data.
        class_names: names of the mask channels; linked from the data.
        pretrained_weights: local ImageNet weights of the encoder, or None for random init.
        optimizer, scheduler: factories injected by LightningCLI; None means Adam(lr=1e-3), no schedule.
        monitor: the validation score checkpoints follow.
        dice_weight: weight of an added soft-Dice loss (0: off; the public SegAN code adds one, the paper not).
        hard_mining: k > 0 adds the mean of the k highest soft-Dice losses of the batch (§1's hard-mining
            auxiliary loss, k = 5; off by default as in the paper's final submission).
        postprocess: dense CRF + morphology on test and predict outputs (None: raw maps thresholded at 0.5).
    """

    def __init__(
        self,
        architecture: Architecture = "deeplabv3plus",
        encoder: str = "resnet101",
        se_blocks: bool = False,
        decoder_channels: list[int] | int | None = None,
        num_classes: int = 1,
        class_names: Sequence[str] | None = None,
        pretrained_weights: str | None = None,
        optimizer: OptimizerCallable | None = None,
        scheduler: LRSchedulerCallable | None = None,
        monitor: str = "val/threshold_jaccard",
        dice_weight: float = 0.0,
        hard_mining: int = 0,
        postprocess: PostProcess | None = None,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        self.optimizer, self.scheduler, self.monitor = optimizer, scheduler, monitor
        self.class_names = tuple(class_names or (("lesion",) if num_classes == 1 else
                                                 (str(i) for i in range(num_classes))))
        if len(self.class_names) != num_classes:
            raise ValueError(f"{len(self.class_names)} class names for {num_classes} mask channels")
        self.postprocess_settings = postprocess
        self.net = self.build_net()
        self.metrics = nn.ModuleDict({s: SegmentationScores(self.class_names) for s in EVAL_SPLITS})

    # --- what a method may override ------------------------------------------------------
    def build_net(self) -> nn.Module:
        """The network ``net``: :func:`~lightning_modules.nets.segmentation.build_segmentor` of ``architecture``,
        ``encoder``, ``num_classes`` mask channels, ``pretrained_weights``, ``se_blocks`` and
        ``decoder_channels``. A method overrides it; it runs in ``__init__``, after ``save_hyperparameters``."""
        hp = self.hparams
        return build_segmentor(hp.architecture, hp.encoder, hp.num_classes, hp.pretrained_weights, hp.se_blocks,
                               hp.decoder_channels)

    @override
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)

    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """(N, K, H, W) mask probabilities."""
        return self(images).float().sigmoid()

    def auxiliary_loss(self, probabilities: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """The optional soft-Dice and hard-mining (top-k soft-Dice) terms added to a method's loss."""
        hp = self.hparams
        if not hp.dice_weight and not hp.hard_mining:
            return probabilities.new_zeros(())
        dice = soft_dice_loss(probabilities, masks).mean(1)
        loss = hp.dice_weight * dice.mean()
        if hp.hard_mining:
            loss = loss + dice.topk(min(hp.hard_mining, len(dice))).values.mean()
        return loss

    def segmentation_loss(self, logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Pixel-wise cross-entropy (binary per channel) plus the auxiliary terms."""
        return F.binary_cross_entropy_with_logits(logits.float(), masks) + self.auxiliary_loss(logits.float().sigmoid(),
                                                                                               masks)

    @override
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss = self.segmentation_loss(self(batch["image"]), batch["mask"])
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(batch["image"]))
        return loss

    # --- evaluation shared by every segmentation method -------------------------------------
    def refined(self, images: torch.Tensor, probabilities: torch.Tensor) -> torch.Tensor:
        """Post-processed 0/1 masks (per channel) when ``postprocess`` is set, else the probabilities."""
        settings = self.postprocess_settings
        if settings is None:
            return probabilities
        pictures, maps = images_uint8(images, self.input_normalisation), probabilities.detach().cpu().numpy()
        masks = np.stack([[postprocess(picture, channel, settings) for channel in channels]
                          for picture, channels in zip(pictures, maps, strict=True)])
        return torch.as_tensor(masks, dtype=probabilities.dtype, device=probabilities.device)

    def _evaluation_step(self, batch: dict[str, Any], split: str, probabilities: torch.Tensor | None = None) -> None:
        probabilities = self.probabilities(batch["image"]) if probabilities is None else probabilities
        p, masks = probabilities.clamp(1e-6, 1 - 1e-6), batch["mask"]
        loss = -(masks * p.log() + (1 - masks) * (1 - p).log()).mean()  # pixel-wise CE (autocast-safe form)
        self.log(f"{split}/loss", loss, on_epoch=True, sync_dist=True, batch_size=len(batch["image"]))
        if split == "test":
            probabilities = self.refined(batch["image"], probabilities)
        self.metrics[split].update(probabilities, batch["mask"])

    def logged_metric_names(self) -> list[str]:
        """Every scalar this module logs (grids check their requested metrics against it before training)."""
        names = ["train/loss", *(f"{split}/loss" for split in EVAL_SPLITS)]
        return names + [f"{split}/{name}" for split in EVAL_SPLITS for name in self.metrics[split].metric_names()]

    @override
    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        """Mask probabilities (post-processed when set) at the network's resolution, with each image's id and
        original size, for :class:`callbacks.segmentation.MaskWriter`."""
        masks = self.refined(batch["image"], self.probabilities(batch["image"]))
        return {"image_id": batch["image_id"], "masks": masks, "original_size": batch.get("original_size")}

    @override
    def configure_optimizers(self) -> Optimizer | dict[str, Any]:
        """``optimizer`` (default Adam, lr 1e-3) over the network's parameters, with ``scheduler`` (following
        ``monitor``; a linear decay without ``total_iters`` is fitted to the run's epochs) when one is set."""
        optimizer = (self.optimizer or (lambda params: torch.optim.Adam(params, lr=1e-3)))(self.net.parameters())
        if self.scheduler is None:
            return optimizer
        scheduler = fit_to_run(self.scheduler(optimizer), self._trainer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": self.monitor}}

    def encoder(self) -> nn.Module:
        """The segmentor's feature extractor, SE blocks included."""
        return encoder_of(self.net)

    def pretrained_modules(self) -> list[nn.Module]:
        """The pre-trained part of the encoder (the VGG without the SE blocks): what
        :class:`callbacks.segmentation.FreezeEncoder` fixes for the first epochs (§1)."""
        return backbone_modules(self.encoder())


class SegAN(LesionSegmenter):
    """SegAN (Eq. 1–2): the segmentor S (default the SE-VGG19 U-Net) against the critic C, trained alternately.

    Per batch, first C takes one step **maximising** L = ℓ_mae(f_C(x ∘ S(x)), f_C(x ∘ y)) with S fixed, and its
    weights are clamped to [−``clip_value``, ``clip_value``]; then S takes one step **minimising** the same L
    (plus the optional Dice / hard-mining terms) with C fixed. Both use ``optimizer`` (Adam lr 1e-3 in the paper)
    and ``scheduler`` (linear decay), stepped once per epoch. x ∘ S(x) multiplies each channel of the
    (normalised) image by the predicted lesion probability.

    Args:
        freeze_encoder_epochs: the pre-trained VGG stays fixed this many epochs (paper: 50), by a
            :class:`callbacks.segmentation.FreezeEncoder` the module brings along; the SE blocks, the decoder and the
            critic train from the start ("only train other parts of the segmentor and the critic network").
        critic_width: channels of the critic's first block (×1, 2, 4, 8, 8 over the five blocks).
        critic_kernel: k of the global convolutions (paper: 9).
        clip_value: bound of the critic's weight clipping (paper: 0.05); None disables it.
    """

    def __init__(self, architecture: Architecture = "unet", encoder: str = "vgg19_bn", se_blocks: bool = True,
                 freeze_encoder_epochs: int = 50, critic_width: int = 64, critic_kernel: int = 9,
                 clip_value: float | None = 0.05, **kwargs: Any):
        super().__init__(architecture=architecture, encoder=encoder, se_blocks=se_blocks, **kwargs)
        if self.hparams.num_classes != 1:
            raise ValueError("SegAN segments one lesion mask (task 1); got num_classes "
                             f"{self.hparams.num_classes}")
        self.critic = SegANCritic(3, critic_width, kernel=critic_kernel)
        self.automatic_optimization = False

    def adversarial_loss(self, images: torch.Tensor, probabilities: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Eq. 1 on a batch: the multi-scale L1 between the critic's features of x ∘ S(x) and of x ∘ y."""
        return multiscale_l1(self.critic(images * probabilities), self.critic(images * masks))

    @override
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        segmentor_optimizer, critic_optimizer = self.optimizers()
        images, masks = batch["image"], batch["mask"]

        self.toggle_optimizer(critic_optimizer)  # S fixed: C maximises L
        with torch.no_grad():
            probabilities = self.probabilities(images)
        critic_loss = -self.adversarial_loss(images, probabilities, masks)
        critic_optimizer.zero_grad()
        self.manual_backward(critic_loss)
        critic_optimizer.step()
        if self.hparams.clip_value is not None:
            self.critic.clip_weights(self.hparams.clip_value)
        self.untoggle_optimizer(critic_optimizer)

        self.toggle_optimizer(segmentor_optimizer)  # C fixed: S minimises L
        probabilities = self.probabilities(images)
        adversarial = self.adversarial_loss(images, probabilities, masks)
        loss = adversarial + self.auxiliary_loss(probabilities, masks)
        segmentor_optimizer.zero_grad()
        self.manual_backward(loss)
        segmentor_optimizer.step()
        self.untoggle_optimizer(segmentor_optimizer)

        size = len(images)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=size)
        self.log("train/critic_loss", -critic_loss, on_step=False, on_epoch=True, batch_size=size)

    @override
    def configure_callbacks(self) -> list[L.Callback]:
        """:class:`~callbacks.segmentation.FreezeEncoder` for ``freeze_encoder_epochs`` > 0."""
        from callbacks.segmentation import FreezeEncoder

        return [FreezeEncoder(self.hparams.freeze_encoder_epochs)] if self.hparams.freeze_encoder_epochs else []

    @override
    def on_train_epoch_end(self) -> None:
        """Step each ``scheduler`` once per epoch (manual optimisation leaves that to the module)."""
        schedulers = self.lr_schedulers()
        for scheduler in schedulers if isinstance(schedulers, list) else [schedulers] if schedulers else []:
            scheduler.step()

    @override
    def configure_optimizers(self) -> list[Optimizer] | tuple[list[Optimizer], list[LRScheduler]]:
        """Two ``optimizer`` instances (default Adam, lr 1e-3), the segmentor's and the critic's, each with its own
        ``scheduler`` when one is set."""
        make = self.optimizer or (lambda params: torch.optim.Adam(params, lr=1e-3))
        optimizers = [make(self.net.parameters()), make(self.critic.parameters())]
        if self.scheduler is None:
            return optimizers
        return optimizers, [fit_to_run(self.scheduler(optimizer), self._trainer) for optimizer in optimizers]

    @override
    def logged_metric_names(self) -> list[str]:
        """The segmentation metrics and ``train/critic_loss`` (the L the critic maximises)."""
        return [*super().logged_metric_names(), "train/critic_loss"]


def segmentor_from_run(source: str | Path) -> nn.Module:
    """The segmentation network of a finished run (folder or ``.ckpt``) of any :class:`LesionSegmenter`."""
    path = run_checkpoint(source)
    hp, state = checkpoint_net_state(path)
    if not all(key in hp for key in NET_ARGS):
        raise DataError(f"checkpoint '{path}' is not a dermlab segmentation run (it lacks {list(NET_ARGS)}).")
    net = build_segmentor(hp["architecture"], hp["encoder"], hp["num_classes"], None, hp["se_blocks"],
                          hp["decoder_channels"])
    net.load_state_dict(state)
    return net


class SegmentationEnsemble(LesionSegmenter):
    """The mean of the probability maps of ``members`` (finished runs or ``.ckpt`` files of any segmentation
    method), then the post-processing (§1: "an ensemble of 4 VGG models trained by adversarial loss and 2 deeplab
    models trained by pixel-wise cross-entropy loss"). Nothing is trained: ``dermlab test``/``predict`` it
    directly, or ``fit`` with ``trainer.max_epochs: 0`` in a grid."""

    def __init__(self, members: list[str], **kwargs: Any):
        if not members:
            raise ValueError("an ensemble needs at least one member run")
        self.member_paths = [str(m) for m in members]
        super().__init__(**kwargs)

    @override
    def build_net(self) -> nn.Module:
        """The members' segmentation networks (:func:`segmentor_from_run`) in a frozen ``nn.ModuleList``."""
        members = nn.ModuleList(segmentor_from_run(path) for path in self.member_paths)
        members.requires_grad_(False)
        log.info("ensemble of %d segmentation runs: %s", len(members), ", ".join(self.member_paths))
        return members

    @override
    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """(N, K, H, W): the mean of the members' mask probabilities, each member fed the images renormalised
        from the ensemble's input statistics (the first member's) to its own."""
        shared = self.input_normalisation  # the first member's: the datamodule normalises with it
        return torch.stack([member(renormalise(images, shared, backbone_normalisation(member))).float().sigmoid()
                            for member in self.net]).mean(0)

    @override
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """The logit of the mean probability map (ε = 1e-6), so that sigmoid(forward) is :meth:`probabilities`."""
        return torch.logit(self.probabilities(images), eps=1e-6)

    @override
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Nothing: an ensemble is not trained."""
        return None

    @override
    def configure_optimizers(self) -> None:
        """None: an ensemble is not trained."""
        return None

    @override
    def encoder(self) -> nn.Module:
        """Raises NotImplementedError: an ensemble is not trained (its members' encoders stay as they are)."""
        raise NotImplementedError("an ensemble is not trained")

    @override
    def pretrained_modules(self) -> list[nn.Module]:
        """Raises NotImplementedError: an ensemble is not trained, so nothing is frozen for a while."""
        raise NotImplementedError("an ensemble is not trained")
