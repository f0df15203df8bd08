"""Layer-wise effective receptive field (LERF), ``dds`` paper §2.1.

For conv layer h of an untrained, He-initialised CNN, the centre output node q of h is back-propagated
to the input. The node is the centre *pixel* of h's output, i.e. the sum over h's channels at that
position: the paper's q_{i_t,j_t} is indexed by position only ("an output node (a pixel) of a conv
layer"), as in Luo et al. 2016, whose ERF sets the output gradient to 1 at the centre position.
∂q/∂p per input pixel p is the gradient summed over the input's colour channels, normalised to a
maximum of 1 ("4.55 % of the maximum value, i.e., 1 at the center"); the pixels with ∂q/∂p > th =
0.0455 (two standard deviations of a Gaussian ERF) are counted and LERF_h = √count. The paper's
threshold is on the signed derivative ("1 if ∂q/∂p > th; else 0"), the default ``gradient="signed"``;
``gradient="abs"`` thresholds ``|∂q/∂p|`` instead (Σ_c ``|∂q/∂p_c|``, normalised likewise), which counts the
pixels with a strong negative influence too and gives larger LERFs. The mean over 20 random
initialisations is reported (paper §3: "the mean over 20 iterations is used"). The input is Gaussian
noise (the paper does not say; any input works for a network without non-linearity, and noise keeps
ReLU paths active at random). BatchNorm runs in eval mode with its initial statistics, i.e. as the
identity.

Speed: ∂q/∂p is exactly zero outside q's receptive field. For a plain chain of layers (VGG's ``features``;
:mod:`lightning_modules.nets.receptive_field`) each layer's map is computed on the smallest crop of the input that
holds that field, aligned to the layer's stride so that the crop's nodes are the full image's nodes: the same
numbers as on the whole image (``tests/fidelity/test_fidelity_dds.py`` compares both) for a fraction of the work.
Any other network runs one forward pass per initialisation recording every conv output (forward hooks); each
layer's input gradient then comes from its own ``autograd.grad`` on that one graph, with no parameter gradients
computed.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import timm
import torch
from torch import nn

from lightning_modules.nets.receptive_field import FieldGeometry, chain_geometry

THRESHOLD = 0.0455
#: Which derivative the LERF thresholds (``signed`` or ``abs``, see above).
Gradient = Literal["signed", "abs"]
GRADIENTS = ("signed", "abs")


def create_net(name: str) -> nn.Module:
    """An untrained CNN by name: a timm model, or ``torchvision:<name>`` for torchvision's."""
    if name.startswith("torchvision:"):
        import torchvision

        return torchvision.models.get_model(name.split(":", 1)[1], weights=None)
    return timm.create_model(name, pretrained=False)


CLASSIFIER_PREFIXES = ("pre_logits", "head", "fc", "classifier")  # timm's conv-ified classifier layers


def conv_layers(net: nn.Module) -> dict[str, nn.Conv2d]:
    """The feature extractor's 2-D convolutions by module name, in definition order (classifier convs left out)."""
    return {name: module for name, module in net.named_modules()
            if isinstance(module, nn.Conv2d) and not name.startswith(CLASSIFIER_PREFIXES)}


def resolve_layer(net: nn.Module, layer: str) -> str:
    """A module name from a config entry: ``features.28``, or the paper's ``L28`` (index into ``features``)."""
    match = re.fullmatch(r"L(\d+)", layer)
    name = f"features.{match.group(1)}" if match else layer
    layers = conv_layers(net)
    if name not in layers:
        raise KeyError(f"{layer!r} is not a conv layer of this network; conv layers: {list(layers)}")
    return name


def paper_name(name: str) -> str:
    """``features.28`` → ``L28`` (the paper's VGG naming); other names stay as they are."""
    match = re.fullmatch(r"features\.(\d+)", name)
    return f"L{match.group(1)}" if match else name


def he_initialise(net: nn.Module, generator: torch.Generator) -> None:
    """He (Kaiming normal, fan-in, ReLU gain) weights, zero biases, identity BatchNorm."""
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                fan_in = module.weight[0].numel()
                module.weight.normal_(0.0, math.sqrt(2.0 / fan_in), generator=generator)
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.reset_parameters()
                module.reset_running_stats()


def input_gradient_map(grad: torch.Tensor, gradient: Gradient = "signed") -> torch.Tensor:
    """∂q/∂p per input pixel, normalised to a maximum of 1: (C, H, W) input gradient → (H, W).

    ``signed``: Σ_c ∂q/∂p_c (the paper's ∂q/∂p, §2.1); ``abs``: Σ_c ``|∂q/∂p_c|``. Divided by the map's
    maximum (for ``signed`` the largest positive value; a map without one stays ≤ 0 and counts nothing).
    """
    if gradient not in GRADIENTS:
        raise ValueError(f"lerf gradient must be one of {GRADIENTS}, got {gradient!r}")
    values = grad.sum(0) if gradient == "signed" else grad.abs().sum(0)
    return values / values.max().clamp_min(1e-30)


def lerf_size(values: np.ndarray, threshold: float = THRESHOLD) -> float:
    """√(number of pixels with normalised ∂q/∂p > ``threshold``), the LERF size of one map (§2.1)."""
    return math.sqrt(float((values > threshold).sum()))


def gradient_maps(net: nn.Module, layers: Sequence[str], size: int, generator: torch.Generator,
                  gradient: Gradient = "signed", windowed: bool = True) -> dict[str, np.ndarray]:
    """Normalised ∂q/∂p maps, (size, size) each, for the centre node q of each layer.

    q is the sum of the layer's channels at the centre position of its output (see the module docstring). With
    ``windowed`` (and a network whose layers all lie in a plain ``features`` chain) each map comes from the crop
    holding q's receptive field; otherwise from one forward pass over the whole image.
    """
    image = torch.randn(1, 3, size, size, generator=generator)
    chain = _plain_chain(net, layers, size) if windowed else None
    if chain is not None:
        return _windowed_maps(*chain, layers, image, gradient)
    return _whole_image_maps(net, layers, image.requires_grad_(True), gradient)


def _plain_chain(net: nn.Module, layers: Sequence[str], size: int
                 ) -> tuple[nn.Sequential, list[FieldGeometry]] | None:
    """(``net.features``, its geometry) if every layer is ``features.<k>`` of a chain whose geometry is known."""
    chain = getattr(net, "features", None)
    if not isinstance(chain, nn.Sequential) or not all(re.fullmatch(r"features\.\d+", name) for name in layers):
        return None
    geometry = chain_geometry(chain, size)
    return None if geometry is None else (chain, geometry)


def _windowed_maps(chain: nn.Sequential, geometry: list[FieldGeometry], layers: Sequence[str], image: torch.Tensor,
                   gradient: Gradient) -> dict[str, np.ndarray]:
    size = image.shape[-1]
    maps = {}
    with torch.enable_grad():
        for name in layers:
            index = int(name.split(".")[1])
            field = geometry[index]
            centre = field.n // 2
            low, high = field.window(centre, size)
            low -= low % field.j  # the crop starts on the layer's grid, so its nodes are the image's nodes
            crop = image[:, :, low:high, low:high].clone().requires_grad_(True)
            out = chain[:index + 1](crop)
            local = centre - low // field.j
            (grad,) = torch.autograd.grad(out[0, :, local, local].sum(), crop)
            whole = torch.zeros(image.shape[1:])
            whole[:, low:high, low:high] = grad[0]
            maps[name] = input_gradient_map(whole, gradient).numpy()
    return maps


def _whole_image_maps(net: nn.Module, layers: Sequence[str], image: torch.Tensor,
                      gradient: Gradient) -> dict[str, np.ndarray]:
    modules = dict(net.named_modules())
    outputs: dict[str, torch.Tensor] = {}
    hooks = [modules[name].register_forward_hook(functools.partial(_record, outputs, name)) for name in layers]
    deepest = max(layers, key=list(modules).index)
    try:
        with torch.enable_grad():
            _forward_until(net, image, outputs, deepest)
            maps = {}
            for index, name in enumerate(layers):
                out = outputs[name]
                centre = out[0, :, out.shape[2] // 2, out.shape[3] // 2].sum()
                (grad,) = torch.autograd.grad(centre, image, retain_graph=index < len(layers) - 1)
                maps[name] = input_gradient_map(grad[0], gradient).numpy()
    finally:
        for hook in hooks:
            hook.remove()
    return maps


def _record(outputs: dict, name: str, module: nn.Module, inputs: tuple[Any, ...], output: torch.Tensor
            ) -> torch.Tensor:
    """Keep the conv output itself; the layers above get a copy (an in-place ReLU after an un-normalised conv
    would otherwise turn the recorded node into its activation)."""
    outputs[name] = output
    return output.clone()


class _Reached(Exception):
    pass


def _forward_until(net: nn.Module, image: torch.Tensor, outputs: dict, deepest: str) -> None:
    """Run the network forward and stop as soon as ``deepest`` has produced its output."""
    stop = dict(net.named_modules())[deepest].register_forward_hook(lambda *_: (_ for _ in ()).throw(_Reached()))
    try:
        net(image)
    except _Reached:
        pass
    finally:
        stop.remove()


def lerf(net: nn.Module, size: int = 224, inits: int = 20, layers: Sequence[str] | None = None, seed: int = 0,
         threshold: float = THRESHOLD, gradient: Gradient = "signed") -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """LERF per conv layer (mean over ``inits`` He initialisations) and the mean normalised gradient maps.

    ``gradient``: ``signed`` thresholds ∂q/∂p as the paper writes it (§2.1), ``abs`` thresholds ``|∂q/∂p|``.
    """
    names = [resolve_layer(net, layer) for layer in layers] if layers else list(conv_layers(net))
    net.eval()
    for parameter in net.parameters():
        parameter.requires_grad_(False)  # only the input gradient is needed
    generator = torch.Generator().manual_seed(seed)
    sizes = {name: [] for name in names}
    mean_maps = {name: np.zeros((size, size)) for name in names}
    for _ in range(inits):
        he_initialise(net, generator)
        for name, values in gradient_maps(net, names, size, generator, gradient).items():
            sizes[name].append(lerf_size(values, threshold))
            mean_maps[name] += values / inits
    return {name: float(np.mean(v)) for name, v in sizes.items()}, mean_maps


def choose_layer(lerfs: dict[str, float], object_size: float) -> str:
    """The layer whose LERF is closest to the object size: argmin_h ``|Obj − LERF_h|`` (paper §2.3)."""
    return min(lerfs, key=lambda name: abs(object_size - lerfs[name]))
