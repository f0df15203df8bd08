"""``lightning_modules/nets/cam.py``: class activation maps (no Lightning involved)."""

from __future__ import annotations

import pytest
import timm
import torch

from lightning_modules.nets.cam import class_activation_maps


def test_gradient_cam_equals_the_classic_cam_for_a_gap_fc_head():
    """For GAP + linear, Σ_k w_k^c f_k (the dds paper's A_c) and the gradient form agree after normalising."""
    torch.manual_seed(0)
    model = timm.create_model("test_resnet", num_classes=3).eval()
    images = torch.randn(2, 3, 64, 64)
    cams, classes = class_activation_maps(model, images)
    with torch.no_grad():
        features = model.forward_features(images)
        assert torch.equal(classes, model.forward_head(features).argmax(1))
        weights = model.get_classifier().weight[classes]  # (B, C)
        classic = torch.einsum("bc,bchw->bhw", weights, features)[:, None]
        classic = torch.nn.functional.interpolate(classic, size=(64, 64), mode="bicubic", align_corners=False)[:, 0]
        low, high = classic.flatten(1).min(1).values, classic.flatten(1).max(1).values
        classic = (classic - low[:, None, None]) / (high - low)[:, None, None]
    assert cams.shape == (2, 64, 64)
    assert torch.allclose(cams, classic, atol=1e-5)
    assert cams.amin() == 0 and cams.amax() == pytest.approx(1.0)


def test_a_one_by_one_feature_map_gives_a_constant_cam():
    """A 32 px image through a stride-32 net leaves 1×1 features: bicubic upsampling makes a constant map plus
    round-off, which must come back all ones, not round-off scaled to [0, 1] (a random pattern that differed
    between NCHW and NHWC kernels on an AMD EPYC with one thread)."""
    from lightning_modules.nets.cam import activation_maps

    torch.manual_seed(0)
    features = (torch.rand(3, 8, 1, 1) + 0.5).requires_grad_()
    logits = features.flatten(1) @ torch.randn(8, 2)
    raw = torch.nn.functional.interpolate((features * 1.0).detach().sum(1, keepdim=True), size=(32, 32),
                                          mode="bicubic", align_corners=False)
    assert raw.flatten(1).max(1).values.sub(raw.flatten(1).min(1).values).max() < 1e-5  # round-off-sized range
    cams, _ = activation_maps(features, logits, (32, 32))
    assert torch.equal(cams, torch.ones(3, 32, 32))


def test_cam_of_a_chosen_class_under_inference_mode():
    model = timm.create_model("test_resnet", num_classes=2).eval()
    with torch.inference_mode():
        images = torch.randn(1, 3, 32, 32)
        cams, classes = class_activation_maps(model, images, torch.tensor([1]))
    assert classes.tolist() == [1] and cams.shape == (1, 32, 32)
