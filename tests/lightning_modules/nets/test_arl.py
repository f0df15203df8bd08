"""arl paper: the ARL block (Eq. 4–9), ARL-CNN14/50 and the Table I baselines, and ImageNet ResNet-50 weights."""

from __future__ import annotations

import math

import pytest
import timm
import torch
import torchvision
from safetensors.torch import save_file

from dermlab.errors import DataError
from lightning_modules.nets.arl import ARLBottleneck, alphas, attention_mask
from lightning_modules.nets.backbone import create_backbone


def test_block_equation_by_hand_on_a_3x3_map(monkeypatch):
    """y = ReLU(x + F(x) + α · softmax_HW(F(x)) · x) with F fixed, computed number by number."""
    block = ARLBottleneck(4, 1, alpha_init=0.5)  # 4 → 4 channels (expansion 4): identity shortcut
    x = torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0], [2.0, 1.0, -0.5]]).expand(1, 4, 3, 3).clone()
    residual = torch.tensor([[0.0, 1.0, 2.0], [-1.0, 0.5, 0.0], [1.0, -2.0, 0.25]]).expand(1, 4, 3, 3).clone()
    monkeypatch.setattr(block, "residual", lambda _: residual)
    flat_f, flat_x = residual[0, 0].flatten().tolist(), x[0, 0].flatten().tolist()
    total = sum(math.exp(f) for f in flat_f)
    expected = [max(0.0, xi + fi + 0.5 * math.exp(fi) / total * xi) for xi, fi in zip(flat_x, flat_f, strict=True)]
    y = block(x)
    assert y[0, 2].flatten().tolist() == pytest.approx(expected, abs=1e-6)


def test_the_three_normalisations():
    features = torch.randn(2, 5, 4, 3)
    spatial = attention_mask(features, "spatial")
    assert torch.allclose(spatial.sum(dim=(2, 3)), torch.ones(2, 5))  # Eq. 4: each channel's map sums to 1
    assert not torch.allclose(spatial.sum(1), torch.ones(2, 4, 3))  # …and is not nn.Softmax2d (Eq. 5)
    assert torch.allclose(attention_mask(features, "channel").sum(1), torch.ones(2, 4, 3))
    assert torch.allclose(attention_mask(features, "sigmoid"), torch.sigmoid(features))
    with pytest.raises(ValueError, match="spatial"):
        ARLBottleneck(4, 1, normalisation="softmax2d")


def test_projected_shortcut_is_the_x_of_both_terms(monkeypatch):
    block = ARLBottleneck(8, 4, stride=2, downsample=torch.nn.Sequential(torch.nn.Conv2d(8, 16, 1, stride=2)),
                          alpha_init=2.0).eval()
    x = torch.randn(1, 8, 6, 6)
    residual = block.residual(x)
    shortcut = block.downsample(x)
    expected = torch.relu(shortcut + residual + 2.0 * residual.flatten(2).softmax(-1).view_as(residual) * shortcut)
    assert torch.allclose(block(x), expected, atol=1e-6)


@pytest.mark.parametrize("name,blocks", [("arl_cnn14", 4), ("arl_cnn50", 16)])
def test_stages_shapes_alphas_and_their_gradient(name, blocks):
    model = timm.create_model(name, num_classes=2)
    assert len(alphas(model)) == blocks and list(alphas(model).values()) == [pytest.approx(0.001)] * blocks
    shapes = {}
    for stage in ("layer1", "layer2", "layer3", "layer4"):
        getattr(model, stage).register_forward_hook(lambda m, i, o, stage=stage: shapes.__setitem__(stage, o.shape))
    logits = model(torch.randn(2, 3, 64, 64))
    assert logits.shape == (2, 2)
    assert shapes == {"layer1": (2, 256, 16, 16), "layer2": (2, 512, 8, 8), "layer3": (2, 1024, 4, 4),
                      "layer4": (2, 2048, 2, 2)}
    # α's gradient, with BN on its running statistics: in training mode a batch of two can centre the gradient
    # through the zero-initialised residual branches to exactly 0 (seen once in 300 seeds), which says nothing of α
    torch.manual_seed(0)
    model.eval()
    torch.nn.functional.cross_entropy(model(torch.randn(2, 3, 64, 64)), torch.tensor([0, 1])).backward()
    grads = [m.alpha.grad for m in model.modules() if isinstance(m, ARLBottleneck)]
    assert all(g is not None and g.abs() > 0 for g in grads)


def test_parameter_difference_is_exactly_the_alphas():
    arl = sum(p.numel() for p in timm.create_model("arl_cnn50").parameters())
    resnet = sum(p.numel() for p in timm.create_model("resnet50").parameters())
    assert arl - resnet == 16


@pytest.mark.parametrize("source", ["timm", "torchvision"])
def test_imagenet_resnet50_weights_land_and_alpha_zero_is_resnet50(source, tmp_path):
    reference = (timm.create_model("resnet50") if source == "timm"
                 else torchvision.models.resnet50(weights=None)).eval()
    path = tmp_path / "resnet50.safetensors"
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(path))
    arl = create_backbone("arl_cnn50", 1000, str(path)).eval()
    loaded = arl.state_dict()
    for key, value in reference.state_dict().items():
        assert torch.equal(loaded[key], value), key  # every ResNet-50 tensor lands
    assert [k for k in loaded if k not in reference.state_dict()] == [f"{n}.alpha" for n in alphas(arl)]
    with torch.no_grad():
        for module in arl.modules():
            if isinstance(module, ARLBottleneck):
                module.alpha.zero_()
        images = torch.randn(2, 3, 64, 64)
        assert torch.allclose(arl(images), reference(images), atol=1e-5)
    two_classes = create_backbone("arl_cnn50", 2, str(path))  # fine-tuning: a new 2-way classifier
    assert two_classes.fc.out_features == 2 and torch.equal(two_classes.conv1.weight, reference.conv1.weight)


def test_weights_of_another_network_are_refused(tmp_path):
    path = tmp_path / "resnet18.safetensors"
    save_file(timm.create_model("resnet18").state_dict(), str(path))
    with pytest.raises(DataError, match="cannot load weights"):
        create_backbone("arl_cnn50", 2, str(path))


@pytest.mark.parametrize("name", ["resnet14", "seresnet14", "ran14", "ran50"])
def test_baselines_build_and_classify(name):
    model = timm.create_model(name, num_classes=2)
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 2)
    assert model.forward_features(torch.randn(1, 3, 64, 64)).shape == (1, 2048, 2, 2)
    if name == "seresnet14":
        assert any(type(m).__name__ == "SEModule" for m in model.modules())
