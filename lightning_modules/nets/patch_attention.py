"""Patch-based attention across crops, patch dropout and the GRU baseline, ``patch`` paper §II-D/E (Fig. 2–3).

All N_C crops of an image go through one shared backbone as a single (N_B·N_C) batch. The attention block
(Fig. 3) regroups a feature tensor as (N_B, N_C, C, H, W), takes the patch weights w = GAP over (C, H, W)
(N_B × N_C), transforms them with a fully-connected layer f^a of N_C × N_C (+ N_C biases) and a sigmoid,
w' = σ(f^a(w)) ∈ [0, 1], multiplies every crop's features by its w' and reshapes back. It can sit at the
network input (``initial``), before the pooling / classifier (``end``), or both (``dual``), on any timm
backbone (through ``forward_features`` / ``forward_head``, without touching the backbone's code). The output
is one prediction per crop; the classifier averages them. Patch dropout zeroes each crop with probability
p_d during training (§II-D). The GRU baseline (§II-E) feeds the crops' pooled feature vectors to one GRU
layer (1024 units in the paper) whose last state goes to the classifier.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from typing_extensions import override

#: Where the attention block sits (``none``, ``initial``, ``end`` or ``dual``, see above).
Attention = Literal["none", "initial", "end", "dual"]
#: How the crops' outputs are combined (``mean`` of the per-crop predictions, or the ``gru`` baseline).
Aggregation = Literal["mean", "gru"]


class PatchAttention(nn.Module):
    """Fig. 3: features of (N_B·N_C, C, H, W) reweighted per crop by σ(FC_{N_C×N_C}(GAP(features)))."""

    def __init__(self, n_crops: int):
        super().__init__()
        self.n_crops = n_crops
        self.fc = nn.Linear(n_crops, n_crops)
        self.last_weights: torch.Tensor | None = None  # (N_B, N_C) of the latest call, for Fig. 4

    @override
    def forward(self, features: torch.Tensor) -> torch.Tensor:
        grouped = features.reshape(-1, self.n_crops, *features.shape[1:])
        weights = torch.sigmoid(self.fc(grouped.mean(dim=(2, 3, 4))))
        self.last_weights = weights.detach()
        return (grouped * weights[:, :, None, None, None].to(grouped.dtype)).reshape(features.shape)


class CropDropout(nn.Module):
    """Patch dropout (§II-D): in training, each crop of (N_B, N_C, C, H, W) is zeroed with probability p
    (no rescaling: a dropped crop is simply missing, as in the paper)."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"patch dropout probability must lie in [0, 1), got {p}")
        self.p = p

    @override
    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return crops
        keep = torch.rand(crops.shape[:2], device=crops.device) >= self.p
        return crops * keep[:, :, None, None, None].to(crops.dtype)


class CropNet(nn.Module):
    """A timm backbone over the N_C crops of each image, with patch attention and/or a GRU across them.

    ``backbone`` classifies (``aggregation: mean``) or, for ``gru``, has no classifier (``num_classes=0``).
    ``forward`` maps (N_B, N_C, C, H, W) to logits (N_B, N_C, K) — one row per crop, or a single row for
    the GRU. Without attention any number of crops works, also (N_B, C, H, W) single images (N_C = 1), so the
    same module serves Downsampling, Single-Crop and Multi-Crop; patch dropout acts only on several crops.
    """

    def __init__(self, backbone: nn.Module, n_crops: int, num_classes: int, attention: Attention = "none",
                 aggregation: Aggregation = "mean", crop_dropout: float = 0.0, gru_hidden: int = 1024):
        super().__init__()
        if attention not in ("none", "initial", "end", "dual") or aggregation not in ("mean", "gru"):
            raise ValueError(f"attention must be none|initial|end|dual and aggregation mean|gru; got {attention!r}, "
                             f"{aggregation!r}")
        self.backbone, self.n_crops, self.aggregation = backbone, n_crops, aggregation
        self.crop_dropout = CropDropout(crop_dropout)
        self.initial = PatchAttention(n_crops) if attention in ("initial", "dual") else None
        self.end = PatchAttention(n_crops) if attention in ("end", "dual") else None
        if aggregation == "gru":
            self.gru = nn.GRU(backbone.num_features, gru_hidden, num_layers=1, batch_first=True)
            self.classifier = nn.Linear(gru_hidden, num_classes)

    def crop_weights(self) -> torch.Tensor | None:
        """The latest attention weights (N_B, N_C): of the end block when there is one (Fig. 4), else the initial."""
        block = self.end or self.initial
        return None if block is None else block.last_weights

    @override
    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        """Logits (N_B, N_C, K) of (N_B, N_C, C, H, W) crops, (N_B, 1, K) for the GRU or single images.

        Raises:
            ValueError: not 4-D / 5-D, or with attention a crop count other than ``n_crops``.
        """
        if crops.ndim == 4:  # single images / random crops (Downsampling, Single- and Multi-Crop training)
            crops = crops[:, None]
        attention = self.initial is not None or self.end is not None
        if crops.ndim != 5 or (attention and crops.shape[1] != self.n_crops):
            raise ValueError(f"expected (N_B, {self.n_crops}, C, H, W) crops, got {tuple(crops.shape)}; set the "
                             f"datamodule's train_crops / eval_crops to {self.n_crops}")
        n_images, n_crops = crops.shape[:2]
        x = (self.crop_dropout(crops) if n_crops > 1 else crops).flatten(0, 1)
        if self.initial is not None:
            x = self.initial(x)
        features = self.backbone.forward_features(x)
        if self.end is not None:
            features = self.end(features)
        if self.aggregation == "gru":
            vectors = self.backbone.forward_head(features, pre_logits=True).reshape(n_images, n_crops, -1)
            _, hidden = self.gru(vectors)
            return self.classifier(hidden[-1])[:, None]
        return self.backbone.forward_head(features).reshape(n_images, n_crops, -1)

    # single-crop CAMs (the suite's CAM grid): the backbone on its own
    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """The backbone's feature maps of single crops (B, C, H, W), without attention (timm's API, for CAMs)."""
        return self.backbone.forward_features(images)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """The backbone's head on single-crop features.

        Raises:
            NotImplementedError: the GRU model (unless ``pre_logits``), which classifies only crop sequences.
        """
        if self.aggregation == "gru" and not pre_logits:
            raise NotImplementedError("the GRU model classifies a sequence of crops, not a single crop")
        return self.backbone.forward_head(features, pre_logits=pre_logits)


def attention_parameters(n_crops: int) -> int:
    """Parameters one attention block adds: the N_C × N_C weights and N_C biases of f^a."""
    return n_crops * n_crops + n_crops
