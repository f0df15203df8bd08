"""``lightning_modules/nets/segan_critic.py``: SegAN's critic and its multi-scale L1 loss."""

from __future__ import annotations

import pytest
import torch

from lightning_modules.nets.segan_critic import GlobalConvBlock, SegANCritic, multiscale_l1


# --- networks ------------------------------------------------------------------------------------------------
def test_global_conv_block_and_critic_shapes():
    """Both 1×9/9×1 paths keep the size; the 3×3 stride-2 conv halves it; five blocks of widths w·(1, 2, 4, 8, 8)."""
    block = GlobalConvBlock(3, 8)
    assert block(torch.randn(2, 3, 32, 40)).shape == (2, 8, 16, 20)
    assert block.left[0].kernel_size == (1, 9) and block.left[1].kernel_size == (9, 1)
    assert block.right[0].kernel_size == (9, 1) and block.right[1].kernel_size == (1, 9)
    features = SegANCritic(width=4)(torch.randn(2, 3, 64, 64))
    assert [tuple(f.shape[1:]) for f in features] == [(4, 32, 32), (8, 16, 16), (16, 8, 8), (32, 4, 4), (32, 2, 2)]


# --- Eq. 1-2 and the adversarial loop ------------------------------------------------------------------------
def test_multiscale_l1_by_hand():
    """Layer 1: |[1, 2, 3, 4] − 0| averages 2.5; layer 2: |1 − 3| = 2; Eq. 2 averages the layers: 2.25."""
    predicted = [torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([1.0])]
    truth = [torch.zeros(2, 2), torch.tensor([3.0])]
    assert multiscale_l1(predicted, truth).item() == pytest.approx(2.25)
    with pytest.raises(ValueError):
        multiscale_l1(predicted, truth[:1])
