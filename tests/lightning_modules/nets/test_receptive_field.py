"""``lightning_modules/nets/receptive_field.py``: the receptive-field geometry of VGG13, by hand."""

from __future__ import annotations

from torch import nn

from tests.helpers.dds import VGG13_RF


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
