"""Auxiliary classifiers on inner conv layers — the ``dds`` paper's deep supervision (§2.3, Fig. 1).

The paper's "super-model encapsulation" (Fig. 1c, Fig. 2) wraps an unchanged base network (so its
pretrained weights load as they are) and adds an auxiliary branch that classifies the features of
the target layer L_target. Loss_total = Loss_main + Loss_aux (§2.3). Two branch designs (Fig. 1a/b):

* ``resnet`` — ResNet-type, the paper's default: global average pooling + one FC layer.
* ``vgg``    — VGG-type: FC–ReLU–Dropout, FC–ReLU–Dropout, FC. The paper does not give the widths
  (its supplement is not available); torchvision's VGG head would put 4096-wide FCs on a 7×7 map,
  which on a 28×28×512 inner layer is 400 M weights, so the features are first average-pooled to
  ``pool`` × ``pool`` (default 1) and the hidden width is ``hidden`` (default 512).

The branch reads the *output of the chosen conv* (the node whose LERF was measured); the base net is
never edited — a forward hook hands the layer's output to the branch. Branches are He-initialised
(the paper: "the auxiliary branch is initialized randomly (He-initialization)").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from lightning_modules.nets.lerf import conv_layers, resolve_layer

#: The auxiliary branch design (``resnet`` or ``vgg``, see above).
AuxKind = Literal["resnet", "vgg"]


def aux_classifier(kind: AuxKind, channels: int, num_classes: int, hidden: int = 512, pool: int = 1,
                   dropout: float = 0.5) -> nn.Sequential:
    """A He-initialised auxiliary classifier over a (B, ``channels``, h, w) feature map."""
    if kind == "resnet":
        head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes))
    elif kind == "vgg":
        head = nn.Sequential(nn.AdaptiveAvgPool2d(pool), nn.Flatten(),
                             nn.Linear(channels * pool * pool, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
                             nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
                             nn.Linear(hidden, num_classes))
    else:
        raise ValueError(f"unknown auxiliary classifier {kind!r}; use 'resnet' or 'vgg'")
    for module in head.modules():
        if isinstance(module, nn.Linear):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            nn.init.zeros_(module.bias)
    return head


def branch_key(layer: str) -> str:
    """A ModuleDict key for a layer name (dots are not allowed there)."""
    return layer.replace(".", "_")


class DeepSupervision(nn.Module):
    """A base classifier plus auxiliary classifiers at named conv layers.

    ``forward(x)`` returns the main logits only — the prediction (§2.3) — so the wrapper is a
    drop-in classifier; ``forward(x, with_aux=True)`` also returns ``{layer: aux logits}``.
    ``forward_features`` / ``forward_head`` are the base's (for CAMs of the main branch);
    :meth:`branch_features` gives the tapped layer's features and the branch's logits (aux CAMs).
    """

    def __init__(self, base: nn.Module, num_classes: int, layers: Sequence[str] = (), kind: AuxKind = "resnet",
                 hidden: int = 512, pool: int = 1, dropout: float = 0.5):
        super().__init__()
        self.base = base
        self.num_classes, self.kind = num_classes, kind
        self.head_args = {"hidden": hidden, "pool": pool, "dropout": dropout}
        self.heads = nn.ModuleDict()
        self.layers: list[str] = []
        self._taps: dict[str, torch.Tensor] = {}
        self._hooks: list = []
        if layers:
            self.attach(layers)

    def attach(self, layers: Sequence[str]) -> list[str]:
        """Add a branch at each of ``layers`` (``features.28`` or the paper's ``L28``); returns module names."""
        convs = conv_layers(self.base)
        for layer in layers:
            name = resolve_layer(self.base, layer)
            if name in self.layers:
                continue
            self.heads[branch_key(name)] = aux_classifier(self.kind, convs[name].out_channels, self.num_classes,
                                                          **self.head_args)
            self._hooks.append(convs[name].register_forward_hook(self._tap(name)))
            self.layers.append(name)
        return list(self.layers)

    def _tap(self, name: str):
        def hook(module, inputs, output):
            self._taps[name] = output
        return hook

    def forward(self, images: torch.Tensor, with_aux: bool = False):
        self._taps.clear()
        logits = self.base(images)
        if not with_aux:
            self._taps.clear()
            return logits
        aux = {name: self.heads[branch_key(name)](self._taps[name]) for name in self.layers}
        self._taps.clear()
        return logits, aux

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        return self.base.forward_features(images)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.base.forward_head(features)

    def branch_features(self, images: torch.Tensor, layer: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The features at ``layer`` and the auxiliary branch's logits on them."""
        name = resolve_layer(self.base, layer)
        self._taps.clear()
        self.base(images)
        features = self._taps.pop(name)
        self._taps.clear()
        return features, self.heads[branch_key(name)](features)
