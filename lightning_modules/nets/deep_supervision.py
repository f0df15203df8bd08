"""Auxiliary classifiers on inner conv layers and the main GAP + FC head — the ``dds`` paper (§2.2, §2.3, Fig. 1-2).

The paper's "super-model encapsulation" (Fig. 1c, Fig. 2) wraps a base network (its pretrained conv weights load as
they are) and adds an auxiliary branch that classifies the features of the target layer L_target.
Loss_total = Loss_main + Loss_aux (§2.3). Two branch designs (Fig. 1a/b):

* ``resnet`` — ResNet-type, the paper's default: global average pooling + one FC layer.
* ``vgg``    — VGG-type: FC–ReLU–Dropout, FC–ReLU–Dropout, FC. The paper does not give the widths
  (its supplement is not available); torchvision's VGG head would put 4096-wide FCs on a 7×7 map,
  which on a 28×28×512 inner layer is 400 M weights, so the features are first average-pooled to
  ``pool`` × ``pool`` (default 1) and the hidden width is ``hidden`` (default 512).

**Where the branch reads.** Layers are named by their conv (``features.28`` = the paper's ``L28``, the node whose
LERF §2.1 measures), but the branch reads that layer's *activation*: the conv's output as the network passes it on,
after its BatchNorm and ReLU (:func:`activation_point`). On VGG13-BN ``features.28`` (conv) is read at
``features.30`` (its ReLU), so the branch's GAP + FC is not a linear function of the layer below. On a ResNet a
block's first conv is read after its BN + ReLU (``act1``); the block's last conv has no ReLU of its own — its BN
output is added to the shortcut and the sum goes through ``act2`` — so it is read at the block's output
(``act2``), the only activation the network computes after it; a shortcut's conv (``downsample.0``) has none and
is read after its BN. LERF stays defined at the conv output, as in the paper (§2.1: "the target node at the output
of the conv layer h"). BN (identity at He initialisation) and ReLU act per position, so the activation sees the same
receptive field, but ∂q/∂p of the activation's centre node sums only the channels whose pre-activation is positive
there: its LERF is close to the conv's, not equal, so the layer is still chosen from the conv's LERF. Measured at
224 px, 5 He initialisations, seed 0 (signed / ``abs`` reading): VGG13-BN ``features.28`` 51.2 / 84.7, its ReLU
``features.30`` 49.6 / 82.3; ResNet-18 ``layer3.1.conv1`` 60.2 / 97.6, ``act1`` 56.0 / 95.4. A ResNet block output
also adds the shortcut's smaller field: ``layer3.1.conv2`` 67.4 / 116.6, the block output ``act2`` 50.8 / 87.2.

**The main head** (§2.2, Fig. 2(f): "CNN-extracted features are average-pooled and fed to a fully connected (FC)
classifier"): :func:`use_gap_fc_head` replaces a timm VGG's fc6/fc7/fc8 (a 7×7 conv to 4096, 1×1 conv to 4096, FC)
by global average pooling of the feature extractor's output (through the last max-pool, the paper's L34) and one FC,
whose weights give the paper's CAM Σ_k w_k^c f_k (:mod:`lightning_modules.nets.cam`). ResNets already end that way.

Branches are He-initialised (the paper: "the auxiliary branch is initialized randomly (He-initialization)").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from timm.layers import ClassifierHead
from timm.models.vgg import VGG
from torch import nn
from typing_extensions import override

from lightning_modules.nets.lerf import conv_layers, resolve_layer

#: The auxiliary branch design (``resnet`` or ``vgg``, see above).
AuxKind = Literal["resnet", "vgg"]
#: The main head of a VGG, ``gap_fc`` (the paper's GAP + FC) or ``vgg_mlp`` (timm's fc6/fc7/fc8).
MainHead = Literal["gap_fc", "vgg_mlp"]
MAIN_HEADS = ("gap_fc", "vgg_mlp")
ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Hardswish, nn.Mish)
NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def use_gap_fc_head(net: nn.Module, drop_rate: float = 0.0) -> nn.Module:
    """Give a timm VGG the paper's main head: GAP + FC over ``forward_features`` (§2.2, Fig. 2(f)); in place.

    ``pre_logits`` (fc6, fc7) becomes the identity and ``head`` a :class:`~timm.layers.ClassifierHead` with
    average pooling, dropout ``drop_rate`` (the base's ``drop_rate``, 0 by default) and a new FC of
    (num_classes, 512) drawn N(0, 0.01²) with zero bias (VGG's own FC init). Its parameters are ``head.fc.*``,
    the name timm gives a classifier, so checkpoints and ``get_classifier`` work unchanged. Other networks are
    returned as they are (a ResNet already ends in GAP + FC). Returns ``net``.
    """
    if not isinstance(net, VGG):
        return net
    device = next(net.features.parameters()).device
    net.pre_logits = nn.Identity()
    net.head = ClassifierHead(net.num_features, net.num_classes, pool_type="avg", drop_rate=drop_rate).to(device)
    nn.init.normal_(net.head.fc.weight, 0.0, 0.01)
    nn.init.zeros_(net.head.fc.bias)
    net.head.train(net.training)
    net.head_hidden_size = net.num_features
    return net


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


def activation_point(net: nn.Module, conv: str) -> str:
    """The module whose output is conv ``conv``'s activation: the tensor an auxiliary branch at ``conv`` reads.

    Walks the modules registered after the conv in its parent, in order, until the next conv: the first activation
    (ReLU, …, or a norm layer with a built-in activation) is the answer; a norm layer met on the way is kept in case
    no activation follows (a shortcut's conv → BN). A conv that ends a Sequential continues after that Sequential in
    its parent (a stem ``conv1.6`` → ``bn1`` → ``act1``). Registration order is execution order in VGG's
    ``features`` and timm's ResNet blocks and stem. Examples: VGG13-BN ``features.28`` → ``features.30``; ResNet
    ``layer3.1.conv1`` → ``layer3.1.act1``, ``layer3.1.conv2`` → ``layer3.1.act2`` (the block output, after the
    residual sum), ``layer3.0.downsample.0`` → ``layer3.0.downsample.1``. Returns ``conv`` when nothing follows it.
    """
    modules = dict(net.named_modules())
    name, tap = conv, conv
    while True:
        parent_name, _, child = name.rpartition(".")
        children = list(modules[parent_name].named_children())
        after = children[[n for n, _ in children].index(child) + 1:]
        for sibling, module in after:
            full = f"{parent_name}.{sibling}" if parent_name else sibling
            if isinstance(module, nn.Conv2d):
                return tap
            if isinstance(module, ACTIVATIONS) or (isinstance(module, NORMS) and isinstance(
                    getattr(module, "act", None), ACTIVATIONS)):
                return full
            if isinstance(module, NORMS):
                tap = full
        if after or not parent_name or not isinstance(modules[parent_name], nn.Sequential):
            return tap
        name = parent_name  # the conv ends a Sequential: its activation follows the Sequential


class DeepSupervision(nn.Module):
    """A base classifier plus auxiliary classifiers at named conv layers.

    ``forward(x)`` returns the main logits only — the prediction (§2.3) — so the wrapper is a
    drop-in classifier; ``forward(x, with_aux=True)`` also returns ``{layer: aux logits}``.
    ``forward_features`` / ``forward_head`` are the base's (for CAMs of the main branch);
    :meth:`branch_features` gives the tapped layer's activation and the branch's logits (aux CAMs).
    ``taps`` maps each layer (a conv's name) to the module whose output its branch reads (:func:`activation_point`).
    """

    def __init__(self, base: nn.Module, num_classes: int, layers: Sequence[str] = (), kind: AuxKind = "resnet",
                 hidden: int = 512, pool: int = 1, dropout: float = 0.5):
        super().__init__()
        self.base = base
        self.num_classes, self.kind = num_classes, kind
        self.head_args = {"hidden": hidden, "pool": pool, "dropout": dropout}
        self.heads = nn.ModuleDict()
        self.layers: list[str] = []
        self.taps: dict[str, str] = {}
        self._taps: dict[str, torch.Tensor] = {}
        self._hooks: list = []
        if layers:
            self.attach(layers)

    def attach(self, layers: Sequence[str]) -> list[str]:
        """Add a branch at each of ``layers`` (``features.28`` or the paper's ``L28``); returns module names."""
        convs = conv_layers(self.base)
        modules = dict(self.base.named_modules())
        for layer in layers:
            name = resolve_layer(self.base, layer)
            if name in self.layers:
                continue
            self.heads[branch_key(name)] = aux_classifier(self.kind, convs[name].out_channels, self.num_classes,
                                                          **self.head_args)
            self.taps[name] = activation_point(self.base, name)
            self._hooks.append(modules[self.taps[name]].register_forward_hook(self._tap(name)))
            self.layers.append(name)
        return list(self.layers)

    def _tap(self, name: str) -> Callable[[nn.Module, tuple[Any, ...], torch.Tensor], None]:
        def hook(module: nn.Module, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
            self._taps[name] = output
        return hook

    @override
    def forward(self, images: torch.Tensor, with_aux: bool = False
                ) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The base's logits (B, classes); with ``with_aux`` also ``{layer: aux logits (B, classes)}``."""
        self._taps.clear()
        logits = self.base(images)
        if not with_aux:
            self._taps.clear()
            return logits
        aux = {name: self.heads[branch_key(name)](self._taps[name]) for name in self.layers}
        self._taps.clear()
        return logits, aux

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """The base's ``forward_features`` (timm's API, for the main branch's CAM)."""
        return self.base.forward_features(images)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """The base's ``forward_head``: the main logits from :meth:`forward_features`' output."""
        return self.base.forward_head(features)

    def branch(self, layer: str) -> nn.Module:
        """The auxiliary classifier at ``layer`` (``L28`` or a module name)."""
        return self.heads[branch_key(resolve_layer(self.base, layer))]

    def branch_features(self, images: torch.Tensor, layer: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The activation the branch at ``layer`` reads, (B, C, h, w), and the branch's logits on it, (B, classes)."""
        name = resolve_layer(self.base, layer)
        self._taps.clear()
        self.base(images)
        features = self._taps.pop(name)
        self._taps.clear()
        return features, self.heads[branch_key(name)](features)
