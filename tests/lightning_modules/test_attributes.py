"""``lightning_modules/attributes.py``: isic2018 task 2's attribute masks and presence, and a start from a
task 1 run."""

from __future__ import annotations

import pytest
import torch

from lightning_modules.attributes import presence_targets
from tests.conftest import REPO


# --- task 2 ---------------------------------------------------------------------------------------------
def test_attribute_masks_and_presence_labels_agree_on_synthetic_data(synthetic):
    from datamodules.datasets.isic2018 import ATTRIBUTES
    from datamodules.isic2018 import ISIC2018SegmentationDataModule

    pipeline = str(REPO / "experiments/base/augment/isic2018_attr_cpu.yaml")
    data = ISIC2018SegmentationDataModule(str(synthetic("isic2018_task2")), task=2, image_size=32, num_workers=0,
                                          train_transforms=pipeline)
    data.setup("fit")
    assert data.class_names == ATTRIBUTES
    batch = next(iter(data.train_dataloader()))
    masks = batch["mask"]
    assert masks.shape[1] == 5
    presence = presence_targets(masks)
    for image in range(len(masks)):
        for k in range(5):
            assert bool(presence[image, k]) == bool(masks[image, k].sum() > 0)
    assert 0 < presence.mean() < 1  # some attributes present, some absent


def test_attribute_segmenter_starts_from_a_task1_run(tmp_path):
    """``init_from``: the task 1 encoder and decoder load; the 5-channel 1×1 head and the presence head are new."""
    from lightning_modules.attributes import AttributeSegmenter
    from lightning_modules.segmentation import LesionSegmenter

    tiny = {"architecture": "unet", "encoder": "vgg_tiny_bn", "se_blocks": True, "decoder_channels": [16, 8, 8, 8, 8]}
    task1 = LesionSegmenter(**tiny)
    path = tmp_path / "task1.ckpt"
    torch.save({"hyper_parameters": dict(task1.hparams), "state_dict": task1.state_dict()}, path)
    names = ("globules", "milia_like_cyst", "negative_network", "pigment_network", "streaks")
    task2 = AttributeSegmenter(**tiny, num_classes=5, class_names=names, init_from=str(path))
    for (name, mine), (_, theirs) in zip(task2.net.net.encoder.state_dict().items(),
                                         task1.net.net.encoder.state_dict().items(), strict=True):
        assert torch.equal(mine, theirs), name
    assert torch.equal(task2.net.net.decoder.state_dict()["blocks.0.conv1.0.weight"],
                       task1.net.net.decoder.state_dict()["blocks.0.conv1.0.weight"])
    assert task2.net.net.segmentation_head[0].kernel_size == (1, 1)
    assert task2.net.net.segmentation_head[0].out_channels == 5
    other = LesionSegmenter("deeplabv3plus", "resnet18", decoder_channels=16)
    torch.save({"hyper_parameters": dict(other.hparams), "state_dict": other.state_dict()}, tmp_path / "other.ckpt")
    with pytest.raises(ValueError, match="no segmentor encoder"):
        AttributeSegmenter(**tiny, num_classes=5, class_names=names, init_from=str(tmp_path / "other.ckpt"))
