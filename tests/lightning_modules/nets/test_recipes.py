"""Network recipes (``lightning_modules/nets/recipes.py``): what a LightningModule builds is what a package rebuilds."""

from __future__ import annotations

import pytest
import torch

from dermlab.errors import DataError
from lightning_modules.nets.recipes import BUILDERS, build_from_recipe


def test_a_module_and_its_recipe_build_the_same_network():
    from lightning_modules import PatchAttentionClassifier

    module = PatchAttentionClassifier(backbone="test_resnet", num_classes=3, n_crops=4, attention="end",
                                      crop_dropout=0.0)
    recipe = module.net_recipe()
    assert recipe["builder"] == "crop_net" and recipe["arguments"]["n_crops"] == 4
    rebuilt = build_from_recipe(recipe["builder"], recipe["arguments"], weights_follow=True)
    rebuilt.load_state_dict(module.net.state_dict())  # strict: the same tensors, names and shapes
    crops = torch.rand(2, 4, 3, 32, 32)
    module.eval(), rebuilt.eval()
    with torch.inference_mode():
        torch.testing.assert_close(rebuilt(crops), module.net(crops))
    assert module.prediction_recipe() == {"fusion": "crops", "crop_fusion": "logits", "tta": "none",
                                          "temperature": None}


def test_every_builder_is_reachable_and_mistakes_are_named():
    assert set(BUILDERS) == {"timm", "deep_supervision", "crop_net", "flat_cbam", "hierarchical_cbam", "embedding"}
    with pytest.raises(DataError, match="unknown network builder 'unet'"):
        build_from_recipe("unet", {})
    with pytest.raises(DataError, match="takes no argument colour"):
        build_from_recipe("timm", {"backbone": "test_resnet", "num_classes": 2, "colour": "red"})


def test_weights_follow_drops_the_pretrained_file_the_package_does_not_need(tmp_path):
    missing = str(tmp_path / "imagenet.safetensors")
    with pytest.raises(DataError, match="do not exist"):
        build_from_recipe("timm", {"backbone": "test_resnet", "num_classes": 2, "pretrained_weights": missing})
    net = build_from_recipe("timm", {"backbone": "test_resnet", "num_classes": 2, "pretrained_weights": missing},
                            weights_follow=True)
    assert net.num_classes == 2
