"""dds paper: LERF (§2.1), object size from a CAM (§2.2) and the layer choice (§2.3), checked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from lightning_modules.nets.lerf import choose_layer, conv_layers, lerf, resolve_layer
from lightning_modules.nets.object_size import object_box

# Theoretical receptive fields of VGG13's feature convs (3×3 convs, 2×2 pools).
VGG13_RF = {"features.0": 3, "features.3": 5, "features.7": 10, "features.10": 14, "features.14": 24,
            "features.17": 32, "features.21": 52, "features.24": 68, "features.28": 108, "features.31": 140}


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


def test_object_size_of_a_gaussian_cam_by_hand():
    # CAM exp(−r²/(2σ²)) with σ = 10 on a 101×101 grid centred at (50, 50).
    # Central region r² ≤ 2σ² ln(1/0.9) = 21.07 → |x|, |y| ≤ 4: box half-side 4.
    # Grow while the square's corner (h, h) stays ≥ 0.5: 2h² ≤ 2σ² ln 2 = 138.6 → h ≤ 8 → side 17.
    y, x = np.mgrid[0:101, 0:101] - 50
    cam = np.exp(-(x**2 + y**2) / 200.0)
    box = object_box(cam)
    assert box.central == (46, 46, 54, 54)
    assert box.grown == (42, 42, 58, 58) and box.size == pytest.approx(17.0)


def test_object_box_stops_at_the_image_border():
    cam = np.ones((9, 9))
    cam[4, 4] = 1.0
    assert object_box(cam).size == pytest.approx(math.sqrt(81))


def test_a_constant_activation_map_is_all_ones_and_boxes_the_whole_image():
    """A tiny stage-1 model can have all-zero features at the CAM layer; Obj is then the whole image's side."""
    from lightning_modules.nets.cam import activation_maps
    from lightning_modules.nets.object_size import object_box

    features = torch.zeros(1, 4, 2, 2, requires_grad=True)
    logits = features.mean(dim=(2, 3)) @ torch.ones(4, 3)
    cams, _ = activation_maps(features, logits, (8, 6))
    assert torch.equal(cams, torch.ones(1, 8, 6))
    assert object_box(cams[0].numpy()).size == pytest.approx((8 * 6) ** 0.5)


def test_receptive_field_geometry_of_vgg13_by_hand():
    """r_l = r_{l−1} + (k − 1)·j_{l−1}, j_l = j_{l−1}·s: 3, 5, pool → 6 (j 2), 10, 14, pool → 16 (j 4), 24, 32, ..."""
    from lightning_modules.nets.lerf import create_net
    from lightning_modules.nets.receptive_field import chain_geometry

    net = create_net("vgg13_bn")
    geometry = chain_geometry(net.features, 224)
    convs_of = {name: geometry[int(name.split(".")[1])] for name in VGG13_RF}
    assert {name: g.r for name, g in convs_of.items()} == VGG13_RF
    assert [g.j for g in convs_of.values()] == [1, 1, 2, 2, 4, 4, 8, 8, 16, 16]
    assert [g.n for g in convs_of.values()] == [224, 224, 112, 112, 56, 56, 28, 28, 14, 14]
    # centre of output 7: c0 = 0.5 + 1 + 2 + 4 (the pools) = 7.5, + 7·16 = 119.5; ± (140 − 1)/2 → pixels 50 … 189
    assert convs_of["features.31"].window(7, 224) == (50, 190)
    assert chain_geometry(nn.Sequential(nn.Conv2d(3, 3, 3), nn.Flatten()), 32) is None  # not a plain chain


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
