"""``patch`` paper (Gessert et al., IEEE TBME 2020): patch-based attention across ordered crops (§II-E),
patch dropout (§II-D) and the GRU baseline; class / diagnosis-guided loss weighting (§II-F) come from the
base module (``class_weighting: inverse``, ``class_weight_power: k``) and the datamodule
(``dx_type_weights``).

Each batch holds all crops of an image, (N_B, N_C, C, H, W) (datamodule ``train_crops`` / ``eval_crops``).
The network gives one prediction per crop; "at the output, we average over the crops' predictions" (§II-E).
What is averaged is ``crop_fusion``, the same in training (cross-entropy of the fused prediction) as in
evaluation:

* ``logits`` (default, the authors' code: its ``CNN_FC`` means the crops' classifier outputs, then softmax):
  p_i = softmax((1/N_C) Σ_c z_ic);
* ``probabilities``: p_i = (1/N_C) Σ_c softmax(z_ic), the mean of the crops' softmax outputs.

Multi-Crop (attention ``none``) trains on N_C random crops per image jointly (datamodule
``train_crop_positions: random``, as the authors' code) or, as before, on one random crop per image
(``train_crops: 0`` with a random-crop pipeline); both are evaluated on N_C ordered crops, fused as above.
"""

from __future__ import annotations

from typing import Any, Literal

import lightning.pytorch as L
import torch
from typing_extensions import override

from lightning_modules.base import LesionClassifier
from lightning_modules.nets.fusion import crop_log_probabilities
from lightning_modules.nets.patch_attention import Aggregation, Attention


class PatchAttentionClassifier(LesionClassifier):
    """Crops of one image classified jointly: patch attention (initial / end / dual), patch dropout or a GRU.

    Args:
        n_crops: N_C, crops per image (5, 9 or 16 in the paper); the datamodule must deliver as many.
        attention: ``none`` | ``initial`` (at the input) | ``end`` (before pooling / classifier) | ``dual``.
        aggregation: ``mean`` of the crops' predictions, or ``gru`` (one GRU layer over the crops' features).
        crop_dropout: p_d, the probability of zeroing each crop in training (authors' code: 0.1 on HAM).
        gru_hidden: GRU units (paper: 1024, chosen by cross-validation).
        crop_fusion: what is averaged over an image's crops: ``logits`` (the authors' code, default) or
            ``probabilities`` (softmax outputs); see the module docstring. The GRU gives one output per image.
        **kwargs: the base classifier's arguments (backbone, pretrained_weights, class_weighting, ...).
    """

    def __init__(self, n_crops: int = 9, attention: Attention = "end", aggregation: Aggregation = "mean",
                 crop_dropout: float = 0.1, gru_hidden: int = 1024,
                 crop_fusion: Literal["logits", "probabilities"] = "logits", **kwargs: Any):
        if crop_fusion not in ("logits", "probabilities"):
            raise ValueError(f"crop_fusion must be logits or probabilities, got {crop_fusion!r}")
        super().__init__(**kwargs)
        self.weight_sums: dict[str, torch.Tensor] = {}

    net_builder = "crop_net"

    @override
    def net_arguments(self) -> dict[str, Any]:
        """The base arguments and the crops' network: ``n_crops``, ``attention``, ``aggregation``, ``crop_dropout``,
        ``gru_hidden`` (:func:`lightning_modules.nets.recipes.crop_net`)."""
        hp = self.hparams
        return {**super().net_arguments(), "n_crops": hp.n_crops, "attention": hp.attention,
                "aggregation": hp.aggregation, "crop_dropout": hp.crop_dropout, "gru_hidden": hp.gru_hidden}

    def log_probabilities(self, crops: torch.Tensor) -> torch.Tensor:
        """(N_B, N_C, C, H, W) crops (or (N_B, C, H, W) single images) → (N_B, K) log-probabilities of the
        fused prediction: log softmax of the mean logit (``crop_fusion: logits``) or log of the mean softmax
        output (``probabilities``): :func:`~lightning_modules.nets.fusion.crop_log_probabilities`."""
        return crop_log_probabilities(self.net, crops, self.hparams.crop_fusion)

    fusion = "crops"

    @override
    def prediction_recipe(self) -> dict[str, Any]:
        """The base recipe with ``fusion: crops`` and this model's ``crop_fusion``."""
        return {**super().prediction_recipe(), "crop_fusion": self.hparams.crop_fusion}

    @override
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss = self.compute_loss(self.log_probabilities(batch["image"]), batch)  # CE of the averaged prediction
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(batch["label"]))
        return loss

    @override
    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """(N_B, K) fused class probabilities of (N_B, N_C, C, H, W) crops (see :meth:`log_probabilities`)."""
        return self.log_probabilities(images).exp()

    @override
    def _evaluation_step(self, batch: dict[str, Any], split: str) -> None:
        super()._evaluation_step(batch, split)
        weights = self.net.crop_weights()
        if weights is not None:  # running sum of the crop weights, logged as their mean per crop position
            total = self.weight_sums.get(split, torch.zeros(weights.shape[1] + 1, device=weights.device))
            self.weight_sums[split] = total + torch.cat([weights.sum(0), weights.new_tensor([len(weights)])])

    @override
    def _log_split(self, split: str) -> None:
        super()._log_split(split)
        total = self.weight_sums.pop(split, None)
        if total is not None:
            means = self.all_gather(total).reshape(-1, total.shape[0]).sum(0)
            self.log_dict({f"{split}/crop_weight_{i}": float(v) for i, v in enumerate(means[:-1] / means[-1])})

    @override
    def logged_metric_names(self) -> list[str]:
        """The base metrics and, with attention, the mean weight of each crop position (``<split>/crop_weight_k``)."""
        names = super().logged_metric_names()
        if self.hparams.attention != "none":
            names += [f"{s}/crop_weight_{i}" for s in ("val", "test") for i in range(self.hparams.n_crops)]
        return names

    @override
    def configure_callbacks(self) -> list[L.Callback]:
        """:class:`~callbacks.crop_weights.CropWeightsFigure` (Fig. 4) when there is an attention block."""
        from callbacks.crop_weights import CropWeightsFigure

        return [CropWeightsFigure()] if self.hparams.attention != "none" else []
