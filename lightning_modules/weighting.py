"""``weighting`` paper (Barata & Santiago, ISIC Skin Image Analysis workshop 2021): the flat (VGG16 + CBAM) and
hierarchical (VGG16 + level-conditioned CBAM + LSTM) classifiers. The losses (CE / focal), class weights
(CB / ES) and curricula (SPL / OHEM) they are compared under are suite-wide options of the base module and
:class:`callbacks.curriculum.Curriculum`, so this file holds only the two networks' wiring.
"""

from __future__ import annotations

from typing import Any

import torch
from typing_extensions import override

from lightning_modules.base import LesionClassifier
from lightning_modules.nets.cbam import LEAVES


class CBAMClassifier(LesionClassifier):
    """Flat model (§4.1): backbone features → CBAM → FC; ``cbam_dropout`` is the p of its 2 dropout layers
    (§4.3: 0.5 "in several layers"; see :mod:`lightning_modules.nets.cbam`)."""

    def __init__(self, cbam_dropout: float = 0.5, **kwargs: Any):
        super().__init__(**kwargs)

    net_builder = "flat_cbam"

    @override
    def net_arguments(self) -> dict[str, Any]:
        """The backbone and ``cbam_dropout`` (:func:`lightning_modules.nets.recipes.flat_cbam`; no ``drop_rate``)."""
        hp = self.hparams
        arguments = super().net_arguments()
        del arguments["drop_rate"]
        return {**arguments, "cbam_dropout": hp.cbam_dropout}


class HierarchicalClassifier(LesionClassifier):
    """Hierarchical model (§4.1, Eq. 10): one LSTM decision per level, loss summed over the true path's levels.

    Needs the seven ISIC 2018 / HAM10000 classes in their order (MEL, NV, BCC, AKIEC, BKL, DF, VASC).
    ``cbam_dropout`` is the p of its 3 dropout layers (§4.3; see :mod:`lightning_modules.nets.cbam`).
    """

    def __init__(self, lstm_hidden: int = 512, cbam_dropout: float = 0.5, **kwargs: Any):
        super().__init__(**kwargs)
        if tuple(self.class_names) != LEAVES:
            raise ValueError(f"the hierarchical model needs the classes {LEAVES}, got {tuple(self.class_names)}")

    net_builder = "hierarchical_cbam"

    @override
    def net_arguments(self) -> dict[str, Any]:
        """The backbone, ``lstm_hidden`` and ``cbam_dropout`` (:func:`lightning_modules.nets.recipes.hierarchical_cbam`;
        no ``drop_rate``)."""
        hp = self.hparams
        arguments = super().net_arguments()
        del arguments["drop_rate"]
        return {**arguments, "lstm_hidden": hp.lstm_hidden, "cbam_dropout": hp.cbam_dropout}

    @override
    def per_sample_loss(self, outputs: torch.Tensor | dict[str, torch.Tensor], batch: dict[str, Any]) -> torch.Tensor:
        """Eq. 10 on the node outputs in training; the leaf cross-entropy on (log-)probabilities in evaluation."""
        if isinstance(outputs, dict):
            gamma = self.hparams.focal_gamma if self.hparams.loss == "focal" else None
            return self.net.path_loss(outputs, batch["label"], gamma)
        return super().per_sample_loss(outputs, batch)

    @override
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """The weighted Eq. 10 loss of the node outputs (every level's decision on the true path, teacher forced)."""
        loss = self.compute_loss(self.net.node_log_probs(batch["image"]), batch)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(batch["label"]))
        return loss
