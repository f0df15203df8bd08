"""``lightning_modules/patch.py``: how the patch classifier fuses its crops' predictions."""

from __future__ import annotations

import torch


def test_crop_predictions_are_fused_as_logits_by_default_or_as_probabilities():
    """Default: the authors' code (mean logit, then softmax); ``crop_fusion: probabilities``: mean softmax output.
    (Until issue #17 this test asserted the probability mean as the only behaviour.)"""
    from lightning_modules import PatchAttentionClassifier

    crops = torch.randn(2, 3, 3, 32, 32)
    module = PatchAttentionClassifier(backbone="test_resnet", num_classes=7, n_crops=3, attention="none").eval()
    assert torch.allclose(module.probabilities(crops), module.net(crops).mean(1).softmax(-1), atol=1e-6)
    module = PatchAttentionClassifier(backbone="test_resnet", num_classes=7, n_crops=3, attention="none",
                                      crop_fusion="probabilities").eval()
    assert torch.allclose(module.probabilities(crops), module.net(crops).softmax(-1).mean(1), atol=1e-6)
