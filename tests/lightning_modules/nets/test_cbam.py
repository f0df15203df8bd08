"""``lightning_modules/nets/cbam.py``: the weighting paper's hierarchical label paths and per-level loss (Eq. 10),
and CBAM shapes."""

from __future__ import annotations

import math

import pytest
import timm
import torch

from lightning_modules.nets.cbam import (
    LEAVES,
    ConditionedCBAM,
    FlatCBAMClassifier,
    HierarchicalCBAMClassifier,
    features_only,
    label_path,
)


def test_hierarchical_label_paths_for_all_seven_classes():
    paths = {leaf: [node for node, _ in label_path(leaf)] for leaf in LEAVES}
    assert paths["MEL"] == paths["NV"] == ["lesion", "melanocytic"]  # 2 levels for melanocytic lesions
    for leaf in ("BCC", "AKIEC"):
        assert paths[leaf] == ["lesion", "non_melanocytic", "malignant"]  # 3 levels for non-melanocytic
    for leaf in ("BKL", "DF", "VASC"):
        assert paths[leaf] == ["lesion", "non_melanocytic", "benign"]
    assert label_path("DF") == [("lesion", 1), ("non_melanocytic", 0), ("benign", 1)]


def test_per_level_loss_is_the_sum_over_the_true_path_and_leaves_multiply():
    torch.manual_seed(0)
    nodes = {node: torch.randn(2, n).log_softmax(-1) for node, n in
             (("lesion", 2), ("melanocytic", 2), ("non_melanocytic", 2), ("benign", 3), ("malignant", 2))}
    labels = torch.tensor([LEAVES.index("NV"), LEAVES.index("VASC")])
    loss = HierarchicalCBAMClassifier.path_loss(nodes, labels)
    assert loss[0].item() == pytest.approx(-(nodes["lesion"][0, 0] + nodes["melanocytic"][0, 1]).item())
    assert loss[1].item() == pytest.approx(-(nodes["lesion"][1, 1] + nodes["non_melanocytic"][1, 0]
                                             + nodes["benign"][1, 2]).item())
    leaves = HierarchicalCBAMClassifier.leaf_log_probs(nodes).exp()
    assert torch.allclose(leaves.sum(1), torch.ones(2))
    assert leaves[1, LEAVES.index("VASC")].item() == pytest.approx(math.exp(-loss[1].item()))


def test_cbam_shapes():
    images = torch.randn(2, 3, 64, 64)
    flat = FlatCBAMClassifier(features_only(timm.create_model("test_resnet")), 7)
    assert flat(images).shape == (2, 7)
    assert flat.maps.spatial.shape == (2, 2, 2) and flat.maps.channel.shape == (2, flat.backbone.num_features)
    conditioned = ConditionedCBAM(64, 16)
    pooled, spatial, channel = conditioned(torch.randn(2, 64, 5, 5), torch.randn(2, 16))
    assert pooled.shape == (2, 64) and spatial.shape == (2, 5, 5) and channel.shape == (2, 64)
    assert float(spatial.min()) >= 0 and float(spatial.max()) <= 1
    hierarchical = HierarchicalCBAMClassifier(features_only(timm.create_model("test_resnet")), hidden=16)
    assert hierarchical(images).shape == (2, 7)
    spatial, channel = hierarchical.last_decision_maps(torch.tensor([0, 6]))
    assert spatial.shape == (2, 2, 2) and torch.equal(spatial[1], hierarchical.node_maps["benign"][0][1])


def test_vgg16_features_only_drops_the_fully_connected_layers():
    vgg = features_only(timm.create_model("vgg16"))
    assert sum(p.numel() for p in vgg.parameters()) == 14_714_688  # the 13 conv layers only
    assert vgg.forward_features(torch.randn(1, 3, 64, 64)).shape == (1, 512, 2, 2)
