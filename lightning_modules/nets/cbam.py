"""The ``weighting`` paper's two networks (Barata & Santiago, §4.1): a flat VGG16 + CBAM classifier and a
hierarchical VGG16 + level-conditioned CBAM + LSTM classifier.

*Flat*: the backbone's last feature maps → dropout → CBAM (timm's channel-then-spatial module, Woo et al.
2018) → global average pooling → dropout → FC to the 7 classes.

*Hierarchical* (after Barata et al. 2019, the paper's [3]): an LSTM takes one decision per level of the
diagnostic tree, melanocytic vs non-melanocytic → (MEL | NV), or non-melanocytic → (benign | malignant) →
(BKL, DF, VASC | BCC, AKIEC). Before each decision a CBAM whose channel and spatial attention depend on the
decision level — on the LSTM state h of the previous step — pools the features:

    a_c = σ(MLP(avg F) + MLP(max F) + W_c h),    s = σ(conv7×7([mean_c F', max_c F']) + ⟨F', W_s h⟩ / √C)

and the pooled vector (with the previous decision) is the LSTM input. Every tree node has its own head.
The loss of a sample sums the cross-entropy of the decisions on its true path (Eq. 10: 2 levels for
melanocytic, 3 for non-melanocytic; teacher forcing), and its probability of leaf k is the product of the
conditional probabilities along k's path, so the 7 probabilities sum to 1 (prediction = most probable leaf).
The classes follow the ISIC 2018 order MEL, NV, BCC, AKIEC, BKL, DF, VASC.

Dropout (§4.3: "dropout in several layers with a probability of 50 %"; the layers are not named, so the
placement is ours): the flat model drops on the VGG16 feature maps entering CBAM and on the pooled vector
entering the FC (2 layers); the hierarchical one on the feature maps entering the conditioned CBAM, on each
LSTM input and on each LSTM output entering a node head (3 layers), the usual places in attention-LSTM
(captioning-style) models. Each is ``nn.Dropout(p)`` (element-wise, p = ``dropout``, 0.5 in the configs);
VGG16's own fc6/fc7 dropouts go with fc6/fc7 (:func:`features_only`).
"""

from __future__ import annotations

import math

import torch
from timm.layers.cbam import CbamModule
from torch import nn
from typing_extensions import override

# the diagnostic tree: node → its children (leaf names are the HAM classes)
TREE = {
    "lesion": ("melanocytic", "non_melanocytic"),
    "melanocytic": ("MEL", "NV"),
    "non_melanocytic": ("benign", "malignant"),
    "benign": ("BKL", "DF", "VASC"),
    "malignant": ("BCC", "AKIEC"),
}
NODES = tuple(TREE)
#: The leaves of the class tree, the HAM10000 classes in their column order.
LEAVES = ("MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC")


def label_path(leaf: str) -> list[tuple[str, int]]:
    """The decisions from the root to ``leaf``: [(node, index of the chosen child), ...]."""
    for node, children in TREE.items():
        if leaf in children:
            parent = [] if node == "lesion" else label_path(node)
            return [*parent, (node, children.index(leaf))]
    raise KeyError(f"{leaf!r} is not in the diagnostic tree")


class AttentionMaps:
    """Keeps the latest spatial map (B, h, w) and channel weights (B, C) of a CBAM for the figures."""

    spatial: torch.Tensor | None = None
    channel: torch.Tensor | None = None


class FlatCBAMClassifier(nn.Module):
    """Backbone features → dropout → CBAM → GAP → dropout → FC (the flat model); (B, 3, H, W) → logits (B, C)."""

    def __init__(self, backbone: nn.Module, num_classes: int, dropout: float = 0.5):
        super().__init__()
        self.backbone = backbone
        self.feature_dropout = nn.Dropout(dropout)
        self.cbam = CbamModule(backbone.num_features)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(backbone.num_features, num_classes)
        self.maps = AttentionMaps()
        self.cbam.channel.gate.register_forward_hook(
            lambda m, i, o: setattr(self.maps, "channel", o.detach()[:, :, 0, 0]))
        self.cbam.spatial.gate.register_forward_hook(lambda m, i, o: setattr(self.maps, "spatial", o.detach()[:, 0]))

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w): the backbone's last feature maps after dropout and CBAM (what a CAM of this model reads)."""
        return self.cbam(self.feature_dropout(self.backbone.forward_features(images)))

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """GAP → dropout → FC: logits (B, classes), or with ``pre_logits`` the pooled vector (B, C) (timm's API)."""
        pooled = self.dropout(features.mean((2, 3)))
        return pooled if pre_logits else self.fc(pooled)

    @override
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(images))


class ConditionedCBAM(nn.Module):
    """CBAM whose channel and spatial attention also read the LSTM state h (the decision level)."""

    def __init__(self, channels: int, hidden: int, reduction: int = 16):
        super().__init__()
        inner = max(channels // reduction, 8)
        self.mlp = nn.Sequential(nn.Linear(channels, inner), nn.ReLU(inplace=True), nn.Linear(inner, channels))
        self.channel_from_state = nn.Linear(hidden, channels)
        self.spatial = nn.Conv2d(2, 1, 7, padding=3)
        self.spatial_from_state = nn.Linear(hidden, channels)

    @override
    def forward(self, features: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Pooled attended features (B, C), spatial map (B, h, w), channel weights (B, C)."""
        channel = torch.sigmoid(self.mlp(features.mean((2, 3))) + self.mlp(features.amax((2, 3)))
                                + self.channel_from_state(state))
        refined = features * channel[:, :, None, None]
        local = torch.cat([refined.mean(1, keepdim=True), refined.amax(1, keepdim=True)], 1)
        query = self.spatial_from_state(state)[:, :, None, None]
        spatial = torch.sigmoid(self.spatial(local)[:, 0] + (refined * query).sum(1) / math.sqrt(features.shape[1]))
        pooled = (refined * spatial[:, None]).mean((2, 3))
        return pooled, spatial, channel


class HierarchicalCBAMClassifier(nn.Module):
    """Backbone features → (level-conditioned CBAM → LSTM step → node head) along the diagnostic tree.

    ``forward`` returns log-probabilities of the 7 leaves (B, 7); :meth:`node_log_probs` the conditional
    log-probabilities of every node's children, for the per-level loss.
    """

    def __init__(self, backbone: nn.Module, hidden: int = 512, dropout: float = 0.5):
        super().__init__()
        self.backbone, self.hidden = backbone, hidden
        channels = backbone.num_features
        self.cbam = ConditionedCBAM(channels, hidden)
        self.decision_embedding = nn.Embedding(len(NODES) + 1, 32)  # the node being decided (its parent's choice)
        self.lstm = nn.LSTMCell(channels + 32, hidden)
        self.feature_dropout = nn.Dropout(dropout)  # on the feature maps every level's CBAM reads
        self.input_dropout = nn.Dropout(dropout)  # on each LSTM input (pooled features + decision embedding)
        self.dropout = nn.Dropout(dropout)  # on each LSTM output, before the node head
        self.heads = nn.ModuleDict({node: nn.Linear(hidden, len(children)) for node, children in TREE.items()})
        self.node_maps: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def node_log_probs(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per tree node, the conditional log-probabilities (B, children) of its children, every node decided for
        every sample (teacher forcing: the LSTM state reaching a node is the one after its parent's decision).
        Keeps each node's spatial map and channel weights for :meth:`last_decision_maps`."""
        features = self.feature_dropout(self.backbone.forward_features(images))
        batch = features.shape[0]
        zeros = features.new_zeros(batch, self.hidden)
        states = {"lesion": (zeros, zeros)}  # the LSTM state before deciding at each node
        out = {}
        for index, node in enumerate(NODES):  # parents come before children in TREE
            h, c = states[node]
            pooled, spatial, channel = self.cbam(features, h)
            embedding = self.decision_embedding(torch.full((batch,), index, device=images.device, dtype=torch.long))
            h, c = self.lstm(self.input_dropout(torch.cat([pooled, embedding], 1)), (h, c))
            out[node] = self.heads[node](self.dropout(h)).float().log_softmax(-1)
            for child in TREE[node]:
                if child in TREE:
                    states[child] = (h, c)
            self.node_maps[node] = (spatial.detach(), channel.detach())
        return out

    def last_decision_maps(self, leaves: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Spatial map and channel weights of the last decision on each sample's path to ``leaves`` (Fig. 3–4)."""
        last = [label_path(LEAVES[int(k)])[-1][0] for k in leaves]
        spatial = torch.stack([self.node_maps[node][0][i] for i, node in enumerate(last)])
        channel = torch.stack([self.node_maps[node][1][i] for i, node in enumerate(last)])
        return spatial, channel

    @staticmethod
    def leaf_log_probs(nodes: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, 7) leaf log-probabilities, log P(leaf) = Σ over its path of log P(child | node), in :data:`LEAVES`
        order."""
        return torch.stack([sum(nodes[node][:, choice] for node, choice in label_path(leaf)) for leaf in LEAVES], 1)

    @override
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.leaf_log_probs(self.node_log_probs(images))

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """Raises NotImplementedError: one attention map per decision, no single CAM (the CAM grid draws none)."""
        raise NotImplementedError("the hierarchical model has one attention map per decision, no single CAM; "
                                  "see dermlab cbam-maps")

    @staticmethod
    def path_loss(nodes: dict[str, torch.Tensor], labels: torch.Tensor, gamma: float | None = None) -> torch.Tensor:
        """Eq. 10 per sample: Σ_l ℓ^l over the decisions on the true path (focal when ``gamma`` is given)."""
        total = torch.zeros(len(labels), device=labels.device)
        for k, leaf in enumerate(LEAVES):
            on_path = (labels == k).float()
            for node, choice in label_path(leaf):
                log_p = nodes[node][:, choice]
                term = -log_p if gamma is None else -((1 - log_p.exp()).clamp_min(0) ** gamma) * log_p
                total = total + on_path * term
        return total


def features_only(backbone: nn.Module) -> nn.Module:
    """A timm model reduced to its ``forward_features`` (no classifier; VGG's fc6/fc7 ``pre_logits`` dropped)."""
    backbone.reset_classifier(0)
    if hasattr(backbone, "pre_logits"):
        backbone.pre_logits = nn.Identity()
    return backbone
