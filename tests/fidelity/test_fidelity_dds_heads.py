"""dds paper (000) fidelity: VGG13's main head and the auxiliary branch's input.

§2.2 and Fig. 2(f): "CNN-extracted features are average-pooled and fed to a fully connected (FC) classifier", and the
CAM of that head is A_c = Σ_k w_k^c f_k. §2.3: the auxiliary branch classifies the features of L_target, read here
after the layer's BN and ReLU (the tensor the network passes on), while the layer keeps its conv name (``L28``).
"""

from __future__ import annotations

import pytest
import timm
import torch
import torch.nn.functional as F
from timm.models.vgg import ConvMlp
from torch import nn

from tests.conftest import REPO

SMALL_MLP = {"mlp_ratio": 1 / 512}  # timm's fc6/fc7 with 8 hidden channels: a cheap stand-in of the 4096-wide head
IMAGENET_VGG13_BN = REPO / "weights" / "vgg13_bn.tv_in1k.safetensors"


def dds(**kwargs):
    from lightning_modules import DeeplySupervisedClassifier

    return DeeplySupervisedClassifier(**{"aux_layers": None, "backbone": "vgg13_bn", "num_classes": 3, **kwargs})


def normalised_cam(raw: torch.Tensor, size: int) -> torch.Tensor:
    """(B, h, w) → bicubic to size × size, scaled to [0, 1] per image (the paper's A'_c before thresholding)."""
    up = F.interpolate(raw[:, None], size=(size, size), mode="bicubic", align_corners=False)[:, 0]
    low, high = up.flatten(1).min(1).values[:, None, None], up.flatten(1).max(1).values[:, None, None]
    return (up - low) / (high - low)


@pytest.fixture(scope="module")
def vgg13():
    torch.manual_seed(0)
    return dds(aux_layers=["L28"]).eval()


# --- §2.2, Fig. 2(f): GAP + FC on the last conv block ------------------------------------------------------------

def test_the_dds_vgg13_main_head_is_gap_and_one_fc(vgg13):
    base = vgg13.net.base
    assert vgg13.hparams.main_head == "gap_fc"  # the default, saved so checkpoints rebuild it
    assert isinstance(base.pre_logits, nn.Identity)  # no fc6 / fc7
    assert not any(isinstance(m, (ConvMlp, nn.Conv2d)) for m in base.head.modules())
    linears = [m for m in base.head.modules() if isinstance(m, nn.Linear)]
    assert linears == [base.head.fc] and (base.head.fc.in_features, base.head.fc.out_features) == (512, 3)
    images = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        features = base.features(images)  # the feature extractor through L34 (the last max-pool): (2, 512, 4, 4)
        assert features.shape == (2, 512, 4, 4) and torch.equal(features, base.forward_features(images))
        by_hand = features.mean(dim=(2, 3)) @ base.head.fc.weight.T + base.head.fc.bias
        assert torch.allclose(vgg13.net(images), by_hand, atol=1e-5)
        assert torch.allclose(vgg13(images), by_hand, atol=1e-5)


def test_the_gap_fc_cam_is_the_fc_weighted_sum_of_the_last_features(vgg13, monkeypatch):
    from lightning_modules.nets import cam

    net = vgg13.net
    assert cam.gap_fc_classifier(net) is net.base.head.fc
    images = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        features = net.forward_features(images)
        classes = net.forward_head(features).argmax(1)
        weights = net.base.head.fc.weight[classes]  # w^c, (B, K)
        expected = normalised_cam(torch.einsum("bk,bkhw->bhw", weights, features), 128)

    def no_gradients(*args, **kwargs):
        raise AssertionError("a GAP + FC head's CAM comes from its weights, not from gradients (Grad-CAM)")

    monkeypatch.setattr(torch.autograd, "grad", no_gradients)
    cams, predicted = cam.class_activation_maps(net, images)
    assert torch.equal(predicted, classes)
    assert torch.allclose(cams, expected, atol=1e-5) and cams.std() > 0.05
    chosen, _ = cam.class_activation_maps(net, images, torch.tensor([0, 2]))  # a class asked for by the caller
    with torch.no_grad():
        other = normalised_cam(torch.einsum("bk,bkhw->bhw", net.base.head.fc.weight[[0, 2]], features), 128)
    assert torch.allclose(chosen, other, atol=1e-5)


def test_a_resnet_type_branch_cam_uses_its_fc_weights_and_a_vgg_type_branch_is_not_gap_fc():
    from lightning_modules.nets.cam import activation_maps, gap_fc_classifier
    from lightning_modules.nets.deep_supervision import aux_classifier

    torch.manual_seed(0)
    branch = aux_classifier("resnet", 8, 3)
    assert gap_fc_classifier(branch) is branch[2]
    assert gap_fc_classifier(aux_classifier("vgg", 8, 3)) is None
    assert gap_fc_classifier(timm.create_model("test_resnet", num_classes=3)) is None  # a ResNet: Grad-CAM path
    features = torch.randn(2, 8, 3, 3)
    logits = branch(features)
    cams, classes = activation_maps(features, logits, (12, 12), linear=branch[2])
    by_hand = torch.einsum("bk,bkhw->bhw", branch[2].weight[logits.argmax(1)], features)
    assert torch.equal(classes, logits.argmax(1)) and torch.allclose(cams, normalised_cam(by_hand, 12), atol=1e-5)


# --- the old head is kept as an option ----------------------------------------------------------------------------

def test_timm_vgg_head_is_an_option_with_vgg_dropout_after_fc6_and_fc7():
    from lightning_modules.nets.cam import gap_fc_classifier

    module = dds(main_head="vgg_mlp", backbone_args=SMALL_MLP)
    base = module.net.base
    assert isinstance(base.pre_logits, ConvMlp) and base.pre_logits.fc1.kernel_size == (7, 7)
    assert base.pre_logits.drop.p == base.head.drop.p == 0.5  # vgg_dropout acts on fc6 / fc7 of this head
    assert gap_fc_classifier(module.net) is None  # its CAM is Grad-CAM
    assert module.net(torch.randn(1, 3, 64, 64)).shape == (1, 3)
    gap = dds(backbone_args=SMALL_MLP, vgg_dropout=0.3, aux_layers=["L28"], aux_classifier="vgg")
    assert gap.net.base.head.drop.p == 0.0  # GAP + FC: no fc6 / fc7, the base's drop_rate
    assert [m.p for m in gap.net.heads["features_28"] if isinstance(m, nn.Dropout)] == [0.3, 0.3]  # the V branch
    with pytest.raises(ValueError, match="main_head"):
        dds(main_head="dense")
    with pytest.raises(ValueError, match="not a VGG"):
        dds(main_head="vgg_mlp", backbone="test_resnet")


# --- §2.3: the auxiliary branch reads the layer's activation ------------------------------------------------------

def test_the_vgg_branch_at_l28_reads_the_relu_after_its_bn(vgg13):
    net = vgg13.net
    assert net.taps == {"features.28": "features.30"} and vgg13.hparams.aux_layers == ["L28"]
    seen = {}
    hooks = [net.base.features[28].register_forward_hook(lambda m, i, o: seen.__setitem__("conv", o.clone())),
             net.base.features[29].register_forward_hook(lambda m, i, o: seen.__setitem__("bn", o.clone())),
             net.heads["features_28"].register_forward_pre_hook(lambda m, i: seen.__setitem__("branch", i[0]))]
    try:
        with torch.no_grad():
            _, aux = net(torch.randn(2, 3, 32, 32), with_aux=True)
    finally:
        for hook in hooks:
            hook.remove()
    assert list(aux) == ["features.28"]  # the layer keeps its conv name
    assert torch.equal(seen["branch"], torch.relu(seen["bn"]))  # BN → ReLU output
    assert seen["branch"].min() >= 0 and seen["conv"].min() < 0 and (seen["branch"] == 0).any()


def test_resnet_branches_read_after_bn_and_relu_or_at_the_block_output():
    from lightning_modules.nets.deep_supervision import DeepSupervision, activation_point

    resnet18 = timm.create_model("resnet18")
    assert {conv: activation_point(resnet18, conv) for conv in
            ["conv1", "layer3.1.conv1", "layer3.1.conv2", "layer3.0.downsample.0"]} == {
        "conv1": "act1", "layer3.1.conv1": "layer3.1.act1", "layer3.1.conv2": "layer3.1.act2",
        "layer3.0.downsample.0": "layer3.0.downsample.1"}
    torch.manual_seed(0)
    net = DeepSupervision(timm.create_model("test_resnet", num_classes=3), 3, ["layer2.0.conv1", "layer2.0.conv2"])
    assert net.taps == {"layer2.0.conv1": "layer2.0.act1", "layer2.0.conv2": "layer2.0.act2"}
    seen = {}
    block = net.base.layer2[0]
    hooks = [block.bn1.register_forward_hook(lambda m, i, o: seen.__setitem__("bn1", o.clone())),
             block.register_forward_hook(lambda m, i, o: seen.__setitem__("block", o.clone()))]
    for layer in net.layers:
        hooks.append(net.heads[layer.replace(".", "_")].register_forward_pre_hook(
            lambda m, i, layer=layer: seen.__setitem__(layer, i[0])))
    try:
        with torch.no_grad():
            net(torch.randn(2, 3, 64, 64), with_aux=True)
    finally:
        for hook in hooks:
            hook.remove()
    assert torch.equal(seen["layer2.0.conv1"], torch.relu(seen["bn1"]))  # conv1 → BN → ReLU
    assert torch.equal(seen["layer2.0.conv2"], seen["block"])  # conv2 → BN → + shortcut → ReLU: the block output
    assert seen["layer2.0.conv2"].min() >= 0


# --- weights: ImageNet files and earlier runs load into the GAP + FC model -------------------------------------------

def test_an_imagenet_vgg13_bn_file_loads_its_convs_and_the_fc_starts_fresh(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(1)
    imagenet = timm.create_model("vgg13_bn", num_classes=1000, **SMALL_MLP)  # timm's vgg13_bn.tv_in1k layout
    path = tmp_path / "vgg13_bn.tv_in1k.safetensors"
    save_file({k: v.contiguous() for k, v in imagenet.state_dict().items()}, str(path))
    base = dds(pretrained_weights=str(path), backbone_args=SMALL_MLP).net.base
    state = base.state_dict()
    assert not any(k.startswith("pre_logits") for k in state) and state["head.fc.weight"].shape == (3, 512)
    for name, value in imagenet.state_dict().items():
        if name.startswith("features."):
            assert torch.equal(state[name], value), name
    assert 0.008 < base.head.fc.weight.std().item() < 0.012 and not base.head.fc.bias.any()  # N(0, 0.01²), 0


def test_an_earlier_runs_checkpoint_transfers_and_rebuilds_for_cams(tmp_path):
    from lightning_modules.nets.backbone import classifier_net_from_checkpoint

    torch.manual_seed(2)
    source = dds(num_classes=7, backbone_args=SMALL_MLP).eval()  # e.g. the stand-in "ImageNet" run (7 classes)
    checkpoint = tmp_path / "best.ckpt"
    torch.save({"state_dict": {f"net.{k}": v for k, v in source.net.state_dict().items()},
                "hyper_parameters": dict(source.hparams)}, checkpoint)
    rebuilt = classifier_net_from_checkpoint(checkpoint).eval()  # what dermlab objsize and stage 2 read
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(rebuilt(images), source.net(images))
    target = dds(pretrained_weights=str(checkpoint), backbone_args=SMALL_MLP).net.base
    assert all(torch.equal(v, source.net.base.state_dict()[k]) for k, v in target.state_dict().items()
               if k.startswith("features."))
    assert target.head.fc.out_features == 3 and target.head.fc.weight.std() < 0.012  # 7 → 3 classes: a fresh FC
    same = dds(num_classes=7, pretrained_weights=str(checkpoint), backbone_args=SMALL_MLP).net.base
    assert torch.equal(same.head.fc.weight, source.net.base.head.fc.weight)  # same classes: the FC transfers too


def test_every_dds_table_cell_trains_the_gap_fc_head(monkeypatch):
    """Tables 1, 2 and S1 (rendered from Table 1's cells) train the paper's head: base.yaml sets it, no cell
    changes it."""
    from dermlab.commands.trainer import config_parser
    from dermlab.grid import runner, spec

    monkeypatch.chdir(REPO)
    vgg_cells = []
    for table in ("table1", "table2_ablation"):
        grid = spec.load(f"experiments/dds/tables/{table}.yaml")
        for cell in grid.cells():
            for synthetic in (False, True):
                args = runner.cell_args(grid, cell, REPO / "runs" / "x" / cell.id, "data/x", [], synthetic)
                heads = [args[i + 1] for i, a in enumerate(args) if a == "--model.init_args.main_head"]
                assert heads in ([], ["gap_fc"]), (cell.id, heads)
                assert args[:2] == ["-c", "experiments/dds/base.yaml"]
            if "vgg13_bn" in args:
                vgg_cells.append(cell.id)
    assert len(vgg_cells) == 8 + 22  # Table 1: 4 data sets × 2 stages; Table 2: every row is VGG13
    config = config_parser().parse(["-c", "experiments/dds/base.yaml", "--data", "experiments/base/data/isic2016.yaml"])
    assert config.model.init_args.main_head == "gap_fc" and config.model.init_args.backbone == "vgg13_bn"


@pytest.mark.slow
@pytest.mark.skipif(not IMAGENET_VGG13_BN.is_file(), reason="weights/vgg13_bn.tv_in1k.safetensors is not here")
def test_the_real_imagenet_vgg13_bn_weights_load_into_the_gap_fc_model():
    from safetensors.torch import load_file

    weights = load_file(str(IMAGENET_VGG13_BN))
    base = dds(pretrained_weights=str(IMAGENET_VGG13_BN)).net.base
    assert isinstance(base.pre_logits, nn.Identity) and base.head.fc.weight.shape == (3, 512)
    assert all(torch.equal(base.state_dict()[k], v) for k, v in weights.items() if k.startswith("features."))
