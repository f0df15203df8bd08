"""``lightning_modules/nets/patch_attention.py``: the patch paper's patch attention and patch dropout (§II-E)."""

from __future__ import annotations

import pytest
import timm
import torch

from lightning_modules.nets.patch_attention import CropDropout, CropNet, PatchAttention, attention_parameters


def test_attention_block_by_hand_on_two_images_of_three_crops():
    """w = GAP over (C, H, W) per crop; w' = σ(W w + b); each crop's features × its w'."""
    block = PatchAttention(3)
    with torch.no_grad():
        block.fc.weight.copy_(torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [1.0, 1.0, -1.0]]))
        block.fc.bias.copy_(torch.tensor([0.0, -1.0, 0.5]))
    crop_means = torch.tensor([[1.0, 2.0, 3.0], [0.0, -1.0, 0.5]])  # (images, crops)
    features = crop_means[:, :, None, None, None].expand(2, 3, 2, 2, 2).clone()
    features[:, :, 0, 0, 0] += 1.0  # break the constancy, keep the mean: +1 and −1 at two positions
    features[:, :, 1, 1, 1] -= 1.0
    out = block(features.reshape(6, 2, 2, 2)).reshape(2, 3, 2, 2, 2)
    for i, (a, b, c) in enumerate(crop_means.tolist()):
        expected = torch.sigmoid(torch.tensor([a, 2 * b - 1.0, a + b - c + 0.5]))
        assert torch.allclose(block.last_weights[i], expected)
        for k in range(3):
            assert torch.allclose(out[i, k], features[i, k] * expected[k])


def test_attention_adds_nc_squared_plus_nc_parameters_per_block():
    def count(model):
        return sum(p.numel() for p in model.parameters())

    plain = count(CropNet(timm.create_model("test_resnet", num_classes=7), 9, 7, "none"))
    assert count(CropNet(timm.create_model("test_resnet", num_classes=7), 9, 7, "end")) - plain == 90
    assert count(CropNet(timm.create_model("test_resnet", num_classes=7), 16, 7, "dual")) - plain == 2 * 272
    assert attention_parameters(9) == 90
    densenet = sum(p.numel() for p in timm.create_model("densenet121", num_classes=7).parameters())
    assert 100 * 90 / densenet == pytest.approx(0.0013, abs=0.0002)  # the paper's "≈ 0.001 %"


def test_patch_dropout_zeroes_whole_crops_at_its_rate_in_training_only():
    torch.manual_seed(0)
    dropout = CropDropout(0.3)
    crops = torch.ones(400, 10, 3, 4, 4)
    dropped = dropout(crops)
    zeroed = (dropped.flatten(2).abs().sum(-1) == 0).float()
    assert zeroed.mean().item() == pytest.approx(0.3, abs=0.02)
    kept = dropped.flatten(2)[zeroed == 0]
    assert torch.equal(kept, torch.ones_like(kept))  # kept crops are untouched (no rescaling), dropped ones all 0
    assert torch.equal(dropout.eval()(crops), crops)


def test_crop_net_shapes_for_mean_attention_and_gru():
    crops = torch.randn(2, 9, 3, 32, 32)
    for attention in ("none", "initial", "end", "dual"):
        net = CropNet(timm.create_model("test_resnet", num_classes=7), 9, 7, attention).eval()
        assert net(crops).shape == (2, 9, 7)
    gru = CropNet(timm.create_model("test_resnet", num_classes=0), 9, 7, aggregation="gru", gru_hidden=16).eval()
    assert gru(crops).shape == (2, 1, 7)
    plain = CropNet(timm.create_model("test_resnet", num_classes=7), 9, 7).eval()
    assert plain(torch.randn(2, 3, 32, 32)).shape == (2, 1, 7)  # single images: Downsampling / Single-Crop
    with pytest.raises(ValueError, match="eval_crops to 9"):
        CropNet(timm.create_model("test_resnet", num_classes=7), 9, 7, "end")(torch.randn(2, 5, 3, 32, 32))
