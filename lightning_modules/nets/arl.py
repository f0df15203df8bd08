"""Attention residual learning (ARL), ``arl`` paper (Zhang et al., IEEE TMI 2019) §III-A, Fig. 3(c).

An ARL block is a ResNet bottleneck whose residual mapping F(x) (1×1, 3×3, 1×1 convs with BN) also
serves as its own attention mask, with no new layers (Eq. 8–9):

    y = ReLU( x + F(x) + α · 𝔑[F(x)] · x )

α is a learnable scalar per block (the "scale gate"); 𝔑 is the spatial softmax over H×W per channel
(Eq. 4, the paper's choice), the channel softmax (Eq. 5) or the sigmoid (Eq. 6). Where the block
changes stride or width, the projected shortcut is the x of both the identity and the attention
term. (A widely copied public version fixes α and normalises across channels with ``nn.Softmax2d``;
that is Eq. 5 with a constant, not the paper's block.)

ARL-CNN14 / ARL-CNN50 (Table I) are timm ResNets built from this block — stages [1, 1, 1, 1] and
[3, 4, 6, 3] — registered with timm (``arl_cnn14``, ``arl_cnn50``; baselines ``resnet14``,
``seresnet14``), so every part of the suite (backbones, CAMs, LERF) takes them by name. Their
parameter names are ResNet's (timm = torchvision naming) plus one ``alpha`` per block, so
ImageNet ResNet-50 weights load with only the α's new. α starts at ``alpha_init``: 0.001 as the
paper does when fine-tuning ARL-CNN50; we use the same value from scratch (the paper gives none).

Initialisation from scratch (``zero_init_last``, every model of this file and ``ran.py``): the paper
states none beyond α (§IV-B) and builds on He et al.'s ResNet (Table I), whose batch norms all start
at γ = 1, so that is the default (``zero_init_last=False``). timm's own default zero-initialises the
last BN (bn3) of every bottleneck (Goyal et al. 2017); ``backbone_args: {zero_init_last: true}``
restores it. For an ARL block that choice matters more than for a plain one: with bn3 = 0, F(x) = 0
at the first step, so 𝔑[F(x)] is the uniform 1/(H·W) and the attention term starts content-free.
Loaded weights (fine-tuning) overwrite bn3 either way.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from timm.models import register_model
from timm.models._builder import build_model_with_cfg
from timm.models.resnet import Bottleneck, ResNet
from torch import nn
from typing_extensions import override

Normalisation = Literal["spatial", "channel", "sigmoid"]
RESNET_CFG = {"num_classes": 1000, "input_size": (3, 224, 224), "first_conv": "conv1", "classifier": "fc",
              "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225), "interpolation": "bilinear",
              "crop_pct": 0.875}


def attention_mask(features: torch.Tensor, normalisation: Normalisation = "spatial") -> torch.Tensor:
    """ϖ = 𝔑(O) for a (B, C, H, W) map: Eq. 4 (softmax over H×W per channel), Eq. 5 (over C), Eq. 6 (σ)."""
    if normalisation == "spatial":
        return features.flatten(2).softmax(-1).view_as(features)
    if normalisation == "channel":
        return features.softmax(1)
    if normalisation == "sigmoid":
        return features.sigmoid()
    raise ValueError(f"unknown attention normalisation {normalisation!r}; use spatial, channel or sigmoid")


class ARLBottleneck(Bottleneck):
    """timm's bottleneck with the attention term of Eq. 9 and a learnable α."""

    #: names new in ARL (its α, which starts at ``alpha_init``), absent from ImageNet ResNet files
    not_in_pretrained_files = ("alpha",)

    def __init__(self, *args: Any, normalisation: Normalisation = "spatial", alpha_init: float = 0.001,
                 **kwargs: Any):
        super().__init__(*args, **kwargs)
        attention_mask(torch.zeros(1, 1, 1, 1), normalisation)  # fail at build time on a bad name
        self.normalisation = normalisation
        self.alpha = nn.Parameter(torch.tensor(float(alpha_init)))

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """F(x): 1×1 → 3×3 → 1×1 convs with BN (and timm's optional SE / drop-path)."""
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.aa(self.act2(self.drop_block(self.bn2(self.conv2(x)))))
        x = self.bn3(self.conv3(x))
        if self.se is not None:
            x = self.se(x)
        return x if self.drop_path is None else self.drop_path(x)

    def attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(ϖ, A) for the block input x (B, C_in, H_in, W_in): the mask ϖ = 𝔑[F(x)] (Eq. 3) and the attention
        feature map A = ϖ · x (Eq. 8, before α), both (B, C_out, H, W) with x the projected shortcut when
        the block changes stride or width. The paper's Fig. 7 (a–c) shows A."""
        shortcut = x if self.downsample is None else self.downsample(x)
        mask = attention_mask(self.residual(x), self.normalisation)
        return mask, mask * shortcut

    @override
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Eq. 9: y = ReLU(x + F(x) + α·𝔑[F(x)]·x), x the projected shortcut where the block changes shape."""
        shortcut = x if self.downsample is None else self.downsample(x)
        residual = self.residual(x)
        # Eq. 9 as F(x) + x · (1 + α·𝔑[F(x)]): two element-wise passes instead of four, the same values
        # (a hand-written fused backward measured no faster on the CPU)
        gate = attention_mask(residual, self.normalisation).mul(self.alpha).add_(1.0)
        return self.act3(torch.addcmul(residual, shortcut, gate))


def alphas(model: nn.Module) -> dict[str, float]:
    """Every ARL block's α by module name (``layer3.5``), for logging over epochs (Fig. 7)."""
    return {name: float(module.alpha.detach()) for name, module in model.named_modules()
            if isinstance(module, ARLBottleneck)}


def attention_maps(model: nn.Module, images: torch.Tensor, blocks: list[str],
                   kind: Literal["attention", "mask"] = "attention") -> dict[str, torch.Tensor]:
    """Per named ARL block (``layer3.2``), the channel mean of its attention feature map A = 𝔑[F(x)]·x
    (Eq. 8; ``kind="mask"``: of ϖ = 𝔑[F(x)], Eq. 3) for ``images`` (B, 3, H, W): {block: (B, h, w)}, h × w
    the block's output size. The paper's Fig. 7 (a–c) draws A of the 13th, 31st and 49th layers.
    Runs the model once in its current mode without gradients; raises KeyError for a name that is not
    an ARL block of ``model``."""
    modules = {name: m for name, m in model.named_modules() if isinstance(m, ARLBottleneck)}
    inputs: dict[str, torch.Tensor] = {}
    handles = [modules[name].register_forward_pre_hook(lambda m, args, name=name: inputs.__setitem__(name, args[0]))
               for name in blocks]
    try:
        with torch.no_grad():
            model(images)
            pairs = {name: modules[name].attention(inputs[name]) for name in blocks}
    finally:
        for handle in handles:
            handle.remove()
    return {name: (mask if kind == "mask" else feature).mean(1) for name, (mask, feature) in pairs.items()}


def _check_resnet_weights(state_dict: dict, model: nn.Module) -> dict:
    """Refuse weights that are not a ResNet of this shape: only the α's (and a resized classifier) may differ."""
    own = model.state_dict()
    stray = [k for k in state_dict if k not in own and not k.startswith("fc.")]
    absent = [k for k in own if k not in state_dict and not k.endswith(".alpha") and not k.startswith("fc.")]
    if stray or absent:
        raise RuntimeError(f"not ResNet weights for this model: {len(stray)} unknown tensor(s) (e.g. "
                           f"{(stray or ['-'])[0]}), {len(absent)} missing (e.g. {(absent or ['-'])[0]})")
    return state_dict


def build_resnet(variant: str, layers: list[int], pretrained: bool, block: type[Bottleneck] = Bottleneck,
                 block_args: dict | None = None, zero_init_last: bool = False, **kwargs: Any) -> ResNet:
    """A timm ResNet of bottleneck ``layers`` whose local pretrained weights must be ResNet weights of that shape.

    ``zero_init_last``: start every block's last BN at γ = 0 (timm's default) instead of 1 (He et al.'s,
    the paper's reading and ours; see the module docstring)."""
    kwargs.pop("pretrained_cfg", None)  # timm's create_model passes an empty one for unregistered weights
    return build_model_with_cfg(ResNet, variant, pretrained, pretrained_cfg={**RESNET_CFG, "architecture": variant},
                                pretrained_strict=False, pretrained_filter_fn=_check_resnet_weights,
                                block=block, layers=layers, block_args=block_args, zero_init_last=zero_init_last,
                                **kwargs)


def _arl(variant: str, layers: list[int], pretrained: bool, normalisation: Normalisation = "spatial",
         alpha_init: float = 0.001, **kwargs: Any) -> ResNet:
    return build_resnet(variant, layers, pretrained, ARLBottleneck,
                  {"normalisation": normalisation, "alpha_init": alpha_init}, **kwargs)


@register_model
def arl_cnn14(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """ARL-CNN14 (Table I): one ARL block per stage."""
    return _arl("arl_cnn14", [1, 1, 1, 1], pretrained, **kwargs)


@register_model
def arl_cnn50(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """ARL-CNN50 (Table I): ResNet-50's [3, 4, 6, 3] stages of ARL blocks."""
    return _arl("arl_cnn50", [3, 4, 6, 3], pretrained, **kwargs)


@register_model
def resnet14(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """ResNet14 baseline (Table I): one bottleneck block per stage."""
    return build_resnet("resnet14", [1, 1, 1, 1], pretrained, **kwargs)


@register_model
def seresnet14(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """SENet14 baseline: ResNet14 with timm's squeeze-and-excitation in every block."""
    return build_resnet("seresnet14", [1, 1, 1, 1], pretrained, block_args={"attn_layer": "se"}, **kwargs)
