"""Residual attention network (Wang et al., CVPR 2017), the RAN14 / RAN50 baselines of the ``arl`` paper.

An attention module (their Fig. 2) runs a trunk branch T (t = 2 residual units) beside a soft-mask
branch M: bottom-up max-pooling with one residual unit per scale down to the smallest map, top-down
bilinear upsampling with skip connections (a residual unit per scale) back to the input size, then
BN-ReLU-1×1 conv twice and a sigmoid. The output is attention residual learning's (1 + M) · T, with
p = 1 residual unit before and after the branches (p, t, r = 1, 2, 1 as in the paper).

RAN14 / RAN50 are ResNet14 / ResNet-50 trunks — bottleneck stages [1, 1, 1, 1] / [3, 4, 6, 3] — with
one attention module after each of the first three stages, at 3, 2 and 1 pooling steps (Attention-56's
layout: the mask reaches the same smallest scale from every stage). Registered with timm as ``ran14``
and ``ran50``. They do NOT match ResNet14/50 in depth or size (the arl paper's Table II, which gives
its RAN14/50, is lost in our copy): counted as for ARL-CNN (§III-B: conv + FC weight layers, no
projection shortcuts) they have 92 / 128 layers (95 / 131 convolutions with the shortcuts; 50 / 86
along the trunk path, Wang et al.'s counting) and 19.4 M / 34.9 M parameters (2 classes) against
ResNet14/50's 14 / 50 layers and 8.0 M / 23.5 M. The README's arl deviations table and the grid's row
labels state this; ``tests/fidelity/test_fidelity_arl.py`` counts it.

Initialisation: the attention modules get the trunk's (He-normal fan-out convolutions, BN γ = 1, and
γ = 0 in every bottleneck's last BN only with ``zero_init_last=True``, see ``arl.py``). With
``pretrained=True`` ResNet weights load into the trunk; the attention modules start random.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from timm.models import register_model
from timm.models.resnet import Bottleneck, ResNet
from torch import nn
from typing_extensions import override

from lightning_modules.nets.arl import build_resnet


def residual_unit(channels: int) -> Bottleneck:
    """A bottleneck residual unit that keeps the shape (channels → channels)."""
    return Bottleneck(channels, channels // Bottleneck.expansion)


class SoftMask(nn.Module):
    """The bottom-up / top-down mask branch: values in (0, 1), same shape as its input."""

    def __init__(self, channels: int, down_steps: int):
        super().__init__()
        self.down = nn.ModuleList(residual_unit(channels) for _ in range(down_steps))
        self.skips = nn.ModuleList(residual_unit(channels) for _ in range(down_steps - 1))
        self.up = nn.ModuleList(residual_unit(channels) for _ in range(down_steps - 1))
        self.head = nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(inplace=True), nn.Conv2d(channels, channels, 1),
                                  nn.BatchNorm2d(channels), nn.ReLU(inplace=True), nn.Conv2d(channels, channels, 1),
                                  nn.Sigmoid())

    @override
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sizes, skips = [], []
        for index, unit in enumerate(self.down):
            sizes.append(x.shape[-2:])
            x = unit(F.max_pool2d(x, 3, 2, 1))
            if index < len(self.skips):
                skips.append(self.skips[index](x))
        for unit, skip, size in zip(self.up, reversed(skips), reversed(sizes[1:]), strict=True):
            x = unit(F.interpolate(x, size=size, mode="bilinear", align_corners=False) + skip)
        return self.head(F.interpolate(x, size=sizes[0], mode="bilinear", align_corners=False))


class AttentionModule(nn.Module):
    """pre → (1 + M(x)) · T(x) → post, with T two residual units and M the soft mask."""

    #: the whole module is new in RAN (the empty prefix), absent from ResNet files, which hold only the trunk
    not_in_pretrained_files = ("",)

    def __init__(self, channels: int, down_steps: int):
        super().__init__()
        self.pre, self.post = residual_unit(channels), residual_unit(channels)
        self.trunk = nn.Sequential(residual_unit(channels), residual_unit(channels))
        self.mask = SoftMask(channels, down_steps)

    @override
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pre(x)
        return self.post((1 + self.mask(x)) * self.trunk(x))


def init_like_resnet(module: nn.Module, zero_init_last: bool) -> None:
    """The initialisation of timm's ResNet (``ResNet.init_weights``) for modules added after it ran: He-normal
    (fan-out) convolutions, BN γ = 1, β = 0, and γ = 0 in every bottleneck's last BN when ``zero_init_last``."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    if zero_init_last:
        for m in module.modules():
            if isinstance(m, Bottleneck):
                m.zero_init_last()


def _ran(variant: str, layers: list[int], pretrained: bool, zero_init_last: bool = False,
         **kwargs: Any) -> ResNet:
    # ResNet weights (pretrained=True) load into the trunk here, before the attention modules exist
    model = build_resnet(variant, layers, pretrained, zero_init_last=zero_init_last, **kwargs)
    for stage, channels, steps in (("layer1", 256, 3), ("layer2", 512, 2), ("layer3", 1024, 1)):
        module = AttentionModule(channels, steps)
        init_like_resnet(module, zero_init_last)
        setattr(model, stage, nn.Sequential(*getattr(model, stage), module))
    return model


@register_model
def ran14(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """RAN14: ResNet14's trunk with an attention module after stages 1–3."""
    return _ran("ran14", [1, 1, 1, 1], pretrained, **kwargs)


@register_model
def ran50(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """RAN50: ResNet-50's trunk with an attention module after stages 1–3."""
    return _ran("ran50", [3, 4, 6, 3], pretrained, **kwargs)
