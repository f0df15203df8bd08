"""``lightning_modules/nets/deep_supervision.py``: the dds paper's auxiliary branches (§2.3, Fig. 1)."""

from __future__ import annotations

import math

import pytest
import timm
import torch
import torch.nn.functional as F
from torch import nn

from lightning_modules.nets.deep_supervision import DeepSupervision, aux_classifier
from lightning_modules.nets.lerf import conv_layers
from tests.helpers.dds import TAP


def test_aux_branch_sits_at_the_layer_and_trains_only_what_is_below_it():
    net = DeepSupervision(timm.create_model("test_resnet", num_classes=3), 3, [TAP])
    images = torch.randn(4, 3, 32, 32)
    main, aux = net(images, with_aux=True)
    assert main.shape == (4, 3) and list(aux) == [TAP] and aux[TAP].shape == (4, 3)
    assert net(images).shape == (4, 3)  # the prediction is the main head alone
    F.cross_entropy(aux[TAP], torch.tensor([0, 1, 2, 0])).backward()
    convs = conv_layers(net.base)
    assert convs["conv1.0"].weight.grad.abs().sum() > 0  # below the tap
    assert convs[TAP].weight.grad.abs().sum() > 0
    assert convs["layer3.0.conv1"].weight.grad is None  # above the tap: the aux loss does not reach it
    assert net.heads["layer2_0_conv1"][-1].weight.grad.abs().sum() > 0


def test_aux_classifier_types_and_he_initialisation():
    resnet = aux_classifier("resnet", 256, 7)
    assert [type(m) for m in resnet] == [nn.AdaptiveAvgPool2d, nn.Flatten, nn.Linear]
    vgg = aux_classifier("vgg", 256, 7, hidden=512)
    assert [type(m) for m in vgg][2:] == [nn.Linear, nn.ReLU, nn.Dropout] * 2 + [nn.Linear]
    assert vgg(torch.randn(2, 256, 9, 9)).shape == (2, 7)
    weight = aux_classifier("resnet", 4096, 7)[-1].weight
    assert weight.std().item() == pytest.approx(math.sqrt(2 / 4096), rel=0.05)  # He: std = √(2 / fan_in)
    with pytest.raises(ValueError, match="resnet"):
        aux_classifier("dense", 8, 2)
