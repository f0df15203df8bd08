"""``lightning_modules/nets/lerf.py``: the dds paper's LERF (§2.1) and layer choice (§2.3), checked by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lightning_modules.nets.lerf import choose_layer, conv_layers, lerf, resolve_layer
from tests.helpers.dds import VGG13_RF


def convs(n: int) -> nn.Module:
    layers = []
    for i in range(n):
        layers += [nn.Conv2d(3 if i == 0 else 16, 16, 3, padding=1), nn.ReLU()]
    return nn.Sequential(*layers)


def test_one_3x3_conv_has_lerf_3_and_two_have_5():
    # |∂q/∂p| counts every tap of the kernels (the signed reading, the default, is checked by hand in
    # tests/fidelity/test_fidelity_dds.py)
    one, _ = lerf(convs(1), size=15, inits=10, gradient="abs")
    two, _ = lerf(convs(2), size=15, inits=10, gradient="abs")
    assert one["0"] == pytest.approx(3.0, abs=0.05)
    assert two["2"] == pytest.approx(5.0, abs=0.1)


def test_vgg13_lerf_rises_and_stays_below_the_theoretical_field():
    from lightning_modules.nets.lerf import create_net

    net = create_net("vgg13_bn")
    assert list(conv_layers(net)) == list(VGG13_RF)  # classifier convs (pre_logits) are not feature layers
    values, maps = lerf(net, size=160, inits=2, layers=["L0", "L3", "L7", "L14", "L21", "features.24"])
    ordered = list(values.values())
    assert ordered == sorted(ordered)
    for name, value in values.items():
        assert value <= VGG13_RF[name] + 1e-9
    assert maps["features.24"].shape == (160, 160) and 0.3 < maps["features.24"].max() <= 1.0  # mean of max-1 maps


def test_paper_layer_names_resolve():
    from lightning_modules.nets.lerf import create_net

    net = create_net("vgg13_bn")
    assert resolve_layer(net, "L28") == "features.28" == resolve_layer(net, "features.28")
    with pytest.raises(KeyError, match="not a conv layer"):
        resolve_layer(net, "L29")


def test_layer_choice_is_the_closest_lerf():
    lerfs = {"L21": 42.6, "L24": 53.6, "L28": 84.2, "L31": 105.8}
    assert choose_layer(lerfs, 71.53) == "L28"  # |71.53 − 84.2| = 12.67 < |71.53 − 53.6| = 17.93
    assert choose_layer(lerfs, 67.19) == "L24"  # 13.59 < 17.01
    assert choose_layer(lerfs, 100.0) == "L31"


@pytest.mark.parametrize("backbone, size", [("vgg11", 48), ("vgg13_bn", 70)])
def test_lerf_maps_from_receptive_field_crops_equal_the_whole_image_maps(backbone, size):
    """The crop holding q's field gives the whole image's ∂q/∂p (vgg11 has in-place ReLUs right after its convs:
    the node is the conv output in both computations, not its activation)."""
    from lightning_modules.nets.lerf import create_net, gradient_maps, he_initialise, lerf_size

    net = create_net(backbone).eval()
    net.requires_grad_(False)
    he_initialise(net, torch.Generator().manual_seed(0))
    layers = list(conv_layers(net))
    cropped, whole = (gradient_maps(net, layers, size, torch.Generator().manual_seed(1), windowed=windowed)
                      for windowed in (True, False))
    for name in layers:
        np.testing.assert_allclose(cropped[name], whole[name], atol=1e-5, err_msg=name)
        assert lerf_size(cropped[name]) == lerf_size(whole[name])
