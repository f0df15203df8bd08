"""``lightning_modules/nets/ran.py``: the residual attention module."""

from __future__ import annotations

import torch


def test_residual_attention_module_is_one_plus_mask_times_trunk(monkeypatch):
    from lightning_modules.nets.ran import AttentionModule

    module = AttentionModule(16, down_steps=3).eval()
    x = torch.randn(2, 16, 16, 16)
    mask = module.mask(module.pre(x))
    assert mask.shape == x.shape and 0 < mask.min() and mask.max() < 1  # sigmoid soft mask, same size
    monkeypatch.setattr(module.mask, "forward", lambda features: torch.full_like(features, 0.25))
    expected = module.post(1.25 * module.trunk(module.pre(x)))
    assert torch.allclose(module(x), expected, atol=1e-6)
