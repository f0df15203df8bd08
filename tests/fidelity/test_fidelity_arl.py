"""Fidelity of the ``arl`` paper (001) reproduction, issue #17: network sizes against the README, Fig. 7 (a–c),
the sign of the Table VII t-test, and the from-scratch initialisation setting (``zero_init_last``)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import yaml
from torch import nn

import lightning_modules.nets.ran  # noqa: F401  (registers ran14 / ran50)
from dermlab.grid import report as reporting
from lightning_modules.nets.arl import attention_maps

REPO = Path(__file__).resolve().parents[2]
TABLES = REPO / "experiments" / "arl" / "tables"


# --- RAN14 / RAN50 against ResNet14 / 50: the figures the README and the grid labels state -------------------------

def sizes(name: str) -> dict:
    """Counted on the built model: weight layers as the paper counts ARL-CNN (conv + FC, no projection shortcuts),
    every convolution, layers along the trunk path (RAN: without the soft-mask branch), parameters in millions."""
    with torch.device("meta"):  # shapes only: no memory, no random init
        model = timm.create_model(name, num_classes=2)
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    main = [n for n in convs if ".downsample." not in n and ".se." not in n and ".se_module." not in n]
    return {"layers": len(main) + 1, "convs": len(convs), "trunk": len([n for n in main if ".mask." not in n]) + 1,
            "params": round(sum(p.numel() for p in model.parameters()) / 1e6, 1)}


def readme_sizes() -> dict[str, dict]:
    """The arl page's network-size table (docs/papers/arl.md): | network | layers | convolutions | trunk |
    parameters |."""
    section = (REPO / "docs" / "papers" / "arl.md").read_text()
    rows = re.findall(r"^\| `(\w+)` \| (\d+) \| (\d+) \| (\d+) \| ([\d.]+) M \|$", section, flags=re.M)
    return {r[0]: {"layers": int(r[1]), "convs": int(r[2]), "trunk": int(r[3]), "params": float(r[4])} for r in rows}


@pytest.mark.parametrize("name", ["resnet14", "seresnet14", "arl_cnn14", "ran14", "resnet50", "legacy_seresnet50",
                                  "arl_cnn50", "ran50"])
def test_network_sizes_in_the_readme_are_what_the_code_builds(name):
    assert readme_sizes()[name] == sizes(name)


def test_ran_is_not_depth_matched_and_its_grid_labels_say_so():
    ran14, ran50 = sizes("ran14"), sizes("ran50")
    # by hand: 3 attention modules of p + t + p = 4 trunk units and 3d − 2 mask units (d = 3, 2, 1 pooling steps):
    # 12 + 7 + 4 + 1 = 24 bottlenecks = 72 convs, + 2 head convs per mask = 78 layers more than the ResNet;
    # along the trunk path (Wang et al.'s counting) 4 units × 3 convs × 3 modules = 36 more
    assert ran14["layers"] - 14 == 78 and ran50["layers"] - 50 == 78 and ran14["trunk"] == 14 + 3 * 12
    for table in ("table3_4.yaml", "table3_4_average.yaml"):
        labels = list(yaml.safe_load((TABLES / table).read_text())["axes"]["model"])
        assert f"RAN14 ({ran14['layers']} layers, {ran14['params']} M params)" in labels
        assert f"RAN50 ({ran50['layers']} layers, {ran50['params']} M params)" in labels


def test_ran50_fine_tunes_its_trunk_like_the_other_50_layer_rows(tmp_path):
    from safetensors.torch import save_file

    from lightning_modules.nets.backbone import create_backbone

    rows = yaml.safe_load((TABLES / "table3_4.yaml").read_text())["axes"]["model"]
    ran50 = next(v for k, v in rows.items() if k.startswith("RAN50"))
    assert ran50 == {**ran50, "model.init_args.optimizer.init_args.lr": 0.0001,
                     "model.init_args.pretrained_weights": rows["ResNet50"]["model.init_args.pretrained_weights"]}
    # the mechanism on the 14-layer pair (the same code path, 8 M instead of 23.5 M weights): trunk loaded, modules new
    resnet = timm.create_model("resnet14", num_classes=2)
    save_file(resnet.state_dict(), str(tmp_path / "resnet14.safetensors"))
    ran = create_backbone("ran14", 2, str(tmp_path / "resnet14.safetensors"))
    assert torch.equal(ran.layer2[0].conv2.weight, resnet.layer2[0].conv2.weight)
    assert torch.equal(ran.conv1.weight, resnet.conv1.weight)
    assert type(ran.layer2[1]).__name__ == "AttentionModule"


# --- Table VII: the sign of t --------------------------------------------------------------------------------------

def test_t_is_positive_when_the_first_group_is_better_on_a_hand_example():
    # [2, 4] vs [0, 2]: means 3 and 1, both sample variances 2 → s_p² = 2, t = 2 / √(2·(1/2 + 1/2)) = √2, df 2
    t, df, p = reporting.ttest([2.0, 4.0], [0.0, 2.0])
    assert t == pytest.approx(math.sqrt(2)) and df == 2 and p < 0.5
    t_swapped, _, p_swapped = reporting.ttest([0.0, 2.0], [2.0, 4.0])
    assert t_swapped == pytest.approx(-math.sqrt(2)) and p_swapped == pytest.approx(1 - p)


def test_papers_eq14_statistics_give_our_plus_78_the_papers_minus_78():
    # ten values per model with the paper's means and sums of squares (Eq. 14): x̄ 90.26, Σ(x − x̄)² 0.0224 (ResNet50);
    # ȳ 91.66, Σ(y − ȳ)² 0.0064 (ARL-CNN50). s_p² = 0.0288 / 18 = 0.0016, t = 1.40 / (0.04·√0.2) = 78.26
    spread = np.array([1, -1] * 5)
    resnet = 90.26 + spread * math.sqrt(0.0224 / 10)
    arl = 91.66 + spread * math.sqrt(0.0064 / 10)
    t, df, p = reporting.ttest(arl, resnet)  # the grid's order: greater = ARL-CNN50, than = ResNet50
    assert t == pytest.approx(1.40 / (0.04 * math.sqrt(0.2)), rel=1e-6) and df == 18 and p < 0.01
    assert t >= 2.552  # our rejection region; the paper's t = x̄ − ȳ … = −t ≤ −2.552
    spec = yaml.safe_load((TABLES / "table7_seeds.yaml").read_text())
    assert spec["ttests"] == [{"metric": "test/auc", "greater": {"model": "ARL-CNN50"}, "than": {"model": "ResNet50"}}]
    comment = (TABLES / "table7_seeds.yaml").read_text()
    assert "t > 0 means ARL-CNN50 is better" in comment and "t ≥ 2.552" in comment


# --- zero_init_last ------------------------------------------------------------------------------------------------

def last_bn_weights(model: nn.Module) -> torch.Tensor:
    from timm.models.resnet import Bottleneck

    return torch.cat([m.bn3.weight.detach() for m in model.modules() if isinstance(m, Bottleneck)])


@pytest.mark.parametrize("name", ["resnet14", "arl_cnn14", "ran14"])
def test_zero_init_last_off_by_default_on_as_an_option(name):
    from lightning_modules.nets.backbone import create_backbone

    default = create_backbone(name, 2)  # the tables' setting: every BN starts at γ = 1 (He et al.)
    assert torch.all(last_bn_weights(default) == 1)
    zeroed = create_backbone(name, 2, zero_init_last=True)  # backbone_args: {zero_init_last: true}, timm's init
    assert torch.all(last_bn_weights(zeroed) == 0)
    if name == "ran14":  # the attention modules (mask branch included) follow the same setting and conv init
        module = default.layer1[1]
        assert module.mask.down[0].bn3.weight.eq(1).all() and zeroed.layer1[1].mask.down[0].bn3.weight.eq(0).all()
        fan_out = module.trunk[0].conv1.weight.shape[0]  # He-normal, fan-out: std √(2 / (64·1·1))
        assert module.trunk[0].conv1.weight.std().item() == pytest.approx(math.sqrt(2 / fan_out), rel=0.1)


def test_zero_init_last_makes_the_arl_mask_uniform_at_the_start():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    for zero, uniform in ((True, True), (False, False)):
        model = timm.create_model("arl_cnn14", num_classes=2, zero_init_last=zero).eval()
        (mask,) = attention_maps(model, x, ["layer1.0"], kind="mask").values()  # 8×8 after the stem
        assert torch.allclose(mask, torch.full_like(mask, 1 / 64)) == uniform


# --- Fig. 7 (a–c) -------------------------------------------------------------------------------------------------

def test_attention_is_eq8_inside_the_blocks_output():
    torch.manual_seed(0)
    block = timm.create_model("arl_cnn14").layer2[0].eval()  # stride 2, 256 → 512: the projected shortcut is x
    with torch.no_grad():
        block.alpha.fill_(0.7)
        x = torch.randn(2, 256, 8, 8)
        mask, feature = block.attention(x)
        shortcut = block.downsample(x)
        assert torch.allclose(mask.flatten(2).sum(-1), torch.ones(2, 512))  # Eq. 4: softmax over H×W per channel
        assert torch.allclose(feature, mask * shortcut)
        assert torch.allclose(block(x), torch.relu(shortcut + block.residual(x) + 0.7 * feature), atol=1e-5)


def test_fig7_figure_of_arl_cnn50_has_the_papers_three_blocks():
    from callbacks.attention_maps import attention_figure

    torch.manual_seed(0)
    net = timm.create_model("arl_cnn50", num_classes=2)
    images = torch.randn(2, 3, 32, 32)
    maps = attention_maps(net.eval(), images, ["layer2.0", "layer3.2", "layer4.2"])
    assert [tuple(m.shape) for m in maps.values()] == [(2, 4, 4), (2, 2, 2), (2, 1, 1)]
    figure = attention_figure(net.train(), images)
    assert net.training  # the mode is restored
    axes = figure.axes
    assert len(axes) == 4 * 2  # the images, then (a), (b), (c); one column per image
    assert [axes[2 * r].get_title() for r in range(4)] == ["image 1", "(a) layer2.0 (layers 11–13)",
                                                           "(b) layer3.2 (layers 29–31)", "(c) layer4.2 (layers 47–49)"]
    assert all(len(axis.get_images()) == 2 for axis in axes[2:])  # the image with its map on top
    first = maps["layer2.0"][0]  # (a) of image 1: A's channel mean (4×4), scaled to [0, 1], bilinear to 32×32
    scaled = (first - first.min()) / (first.max() - first.min())
    expected = torch.nn.functional.interpolate(scaled[None, None], size=(32, 32), mode="bilinear")[0, 0]
    assert np.allclose(axes[2].get_images()[1].get_array(), expected.numpy(), atol=1e-5)
    assert attention_figure(timm.create_model("resnet14"), images) is None


def test_the_default_callback_draws_fig7_at_the_end_of_fit(tmp_path):
    from types import SimpleNamespace

    from callbacks.attention_maps import AttentionMaps

    default = yaml.safe_load((REPO / "experiments" / "base" / "callbacks" / "default.yaml").read_text())
    assert {"class_path": "callbacks.AttentionMaps"} in default  # every run: a no-op without ARL blocks
    torch.manual_seed(0)
    module = SimpleNamespace(net=timm.create_model("arl_cnn14", num_classes=2), device=torch.device("cpu"))
    trainer = SimpleNamespace(is_global_zero=True, default_root_dir=str(tmp_path), loggers=[], global_step=0)
    callback = AttentionMaps(n_images=3)
    batch = {"image": torch.randn(5, 9, 3, 32, 32), "label": torch.zeros(5)}  # 9 test-time views: the first is drawn
    callback.on_validation_batch_end(trainer, module, None, batch, 0)
    callback.on_validation_batch_end(trainer, module, None, {"image": torch.zeros(5, 3, 32, 32)}, 1)  # kept: first
    assert torch.equal(callback.images, batch["image"][:3, 0])
    callback.on_fit_end(trainer, module)
    assert (tmp_path / "plots" / "attention_maps.png").is_file()
    with pytest.raises(ValueError, match="unknown kind"):
        AttentionMaps(kind="cam")
