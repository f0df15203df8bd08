"""``lightning_modules/nets/segmentation.py``: the segmentors and their encoder weights."""

from __future__ import annotations

import pytest
import torch

from dermlab.errors import DataError
from lightning_modules.nets.segmentation import build_segmentor, load_encoder_weights
from tests.helpers.segmentation import TINY_UNET


def test_segmentors_keep_any_input_size_and_se_blocks_sit_on_every_vgg_stage():
    from timm.layers import SEModule

    unet = build_segmentor(**TINY_UNET)
    assert sum(isinstance(m, SEModule) for m in unet.net.encoder.modules()) == 5
    assert unet(torch.randn(2, 3, 74, 84)).shape == (2, 1, 74, 84)  # 74 × 84 is not a multiple of 32: padded
    deeplab = build_segmentor("deeplabv3plus", "resnet18", 1, se_blocks=False, decoder_channels=16)
    assert deeplab.eval()(torch.randn(1, 3, 50, 70)).shape == (1, 1, 50, 70)
    with pytest.raises(ValueError, match="not a VGG"):
        build_segmentor("unet", "resnet18", se_blocks=True)


def test_local_encoder_weights_load_and_a_wrong_file_is_named(tmp_path):
    source = build_segmentor(**{**TINY_UNET, "se_blocks": False}).net.encoder
    state = {f"features.{k.split('features.', 1)[1]}": v for k, v in source.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(3, 3)  # an ImageNet head, dropped
    torch.save(state, tmp_path / "vgg.pth")
    loaded = build_segmentor(**TINY_UNET, pretrained_weights=str(tmp_path / "vgg.pth"))
    first_conv = loaded.net.encoder.features[0].weight
    assert torch.equal(first_conv, source.features[0].weight)
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(DataError, match="other.pth"):
        load_encoder_weights(build_segmentor(**TINY_UNET).net.encoder, tmp_path / "other.pth")
