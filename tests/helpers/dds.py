"""Names shared by the dds paper's tests: the tapped layer of timm's test_resnet and VGG13's receptive fields."""

from __future__ import annotations

TAP = "layer2.0.conv1"  # a conv in the middle of timm's tiny test_resnet


# Theoretical receptive fields of VGG13's feature convs (3×3 convs, 2×2 pools).
VGG13_RF = {"features.0": 3, "features.3": 5, "features.7": 10, "features.10": 14, "features.14": 24,
            "features.17": 32, "features.21": 52, "features.24": 68, "features.28": 108, "features.31": 140}
