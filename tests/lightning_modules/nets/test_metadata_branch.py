"""The metadata branch on every classifier network (lightning_modules/nets/metadata_branch.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from datamodules.metadata import MetadataEncoding
from dermlab.errors import DataError
from lightning_modules.nets.metadata_branch import fed, metadata_branch_of
from lightning_modules.nets.recipes import build_from_recipe

FRAME = pd.DataFrame({"age": [20.0, 40.0, np.nan], "sex": ["male", "female", "unknown"],
                      "localization": ["back", "face", "back"]}, index=["a", "b", "c"])
ENCODING = MetadataEncoding.fit(FRAME, ["age", "sex", "localization"], "tiny")
METADATA = torch.from_numpy(ENCODING.encode(FRAME)[0])
OTHER = torch.zeros_like(METADATA)
OTHER[:, [1, 4, 7]] = 1.0  # every field missing
CASES = {  # builder, arguments, input shape (3 images)
    "timm": ("timm", {"backbone": "test_resnet", "num_classes": 3}, (3, 3, 32, 32)),
    "dds": ("deep_supervision", {"backbone": "vgg11", "num_classes": 3, "aux_layers": ["features.3"]},
            (3, 3, 32, 32)),
    "patch": ("crop_net", {"backbone": "test_resnet", "num_classes": 3, "n_crops": 4, "attention": "end"},
              (3, 4, 3, 16, 16)),
    "patch_gru": ("crop_net", {"backbone": "test_resnet", "num_classes": 3, "n_crops": 4, "aggregation": "gru",
                               "gru_hidden": 8}, (3, 4, 3, 16, 16)),
    "weighting_flat": ("flat_cbam", {"backbone": "vgg11", "num_classes": 3}, (3, 3, 32, 32)),
    "weighting_hierarchical": ("hierarchical_cbam", {"backbone": "vgg11", "num_classes": 7, "lstm_hidden": 16},
                               (3, 3, 32, 32)),
}


@pytest.mark.parametrize("case", CASES)
def test_every_network_fuses_the_metadata_with_its_image_features(case):
    builder, arguments, shape = CASES[case]
    torch.manual_seed(0)
    net = build_from_recipe(builder, arguments, metadata={"encoding": ENCODING.to_json()}).eval()
    assert metadata_branch_of(net) is not None
    images = torch.randn(shape)
    with torch.no_grad():
        with fed(net, METADATA):
            given = net(images)
        with fed(net, OTHER):
            missing = net(images)
        with pytest.raises(ValueError, match="takes patient metadata beside each image; none was given"):
            net(images)
    assert given.shape[0] == 3 and (given - missing).abs().max() > 1e-6  # the fields change the output


def test_views_repeat_each_images_metadata_in_image_major_order():
    net = build_from_recipe("timm", {"backbone": "test_resnet", "num_classes": 2},
                            metadata={"encoding": ENCODING.to_json()}).eval()
    images = torch.randn(3, 3, 32, 32)
    views = images[:, None].expand(-1, 2, -1, -1, -1).flatten(0, 1)  # (b0 v0, b0 v1, b1 v0, ...)
    with torch.no_grad(), fed(net, METADATA):
        once, twice = net(images), net(views)
    torch.testing.assert_close(twice, once.repeat_interleave(2, 0))


def test_field_dropout_writes_each_fields_missing_encoding_in_training_only():
    net = build_from_recipe("timm", {"backbone": "test_resnet", "num_classes": 2},
                            metadata={"encoding": ENCODING.to_json(), "field_dropout": 0.999})
    branch = metadata_branch_of(net)
    torch.manual_seed(0)
    branch.train()
    branch.feed(METADATA)
    torch.testing.assert_close(branch.fed, OTHER)  # p ≈ 1: every field of every image set to missing
    branch.eval()
    branch.feed(METADATA)
    torch.testing.assert_close(branch.fed, METADATA)


def test_the_triplet_network_and_image_only_networks_are_refused_by_name():
    with pytest.raises(DataError, match="triplet network takes no metadata branch"):
        build_from_recipe("embedding", {"backbone": "test_resnet", "num_classes": 3, "embed_dim": 8},
                          metadata={"encoding": ENCODING.to_json()})
    plain = build_from_recipe("timm", {"backbone": "test_resnet", "num_classes": 2})
    with pytest.raises(ValueError, match="without a metadata branch"), fed(plain, METADATA):
        pass
    with pytest.raises(DataError, match="takes no option 'width'"):
        build_from_recipe("timm", {"backbone": "test_resnet", "num_classes": 2},
                          metadata={"encoding": ENCODING.to_json(), "width": 3})
