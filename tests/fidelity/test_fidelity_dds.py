"""dds paper (000) fidelity, issue #17: every item of the ``dds`` part checked against the paper's reading.

Augmentation by default (§3), both stages from the same weights (§2.3), an explicit L28 row in Table 2 with the
data-driven row labelled by the layer it chose, the signed / absolute LERF gradient (§2.1) on a hand-checked
3×3 example, the centre node summed over channels (§2.1), and VGG dropout in fc6/fc7 of ``main_head: vgg_mlp`` and
in the VGG-type branch (§2.3, VGG [21]).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from lightning_modules.nets.lerf_table import lerf_cache_path
from tests.conftest import REPO

DDS = REPO / "experiments" / "dds"
DDS_DATA = ["isic2016", "isic2017", "isic2018_task3", "vitiligo"]


def parse(*args: str):
    from dermlab.commands.trainer import config_parser

    return config_parser().parse([str(a) for a in args])


# --- §3 augmentation is base.yaml's default --------------------------------------------------------------------

@pytest.mark.parametrize("dataset", DDS_DATA)
def test_base_yaml_alone_trains_with_the_papers_flip_and_crop(dataset, monkeypatch):
    from datamodules.transforms import build_transforms

    monkeypatch.chdir(REPO)
    config = parse("-c", DDS / "base.yaml", "--data", f"experiments/base/data/{dataset}.yaml")
    spec = config.data.init_args.train_transforms
    assert spec == "experiments/base/augment/dds.yaml"
    steps = [type(t).__name__ for t in build_transforms(spec, 64, train=True).transforms]
    assert steps[:3] == ["RandomResizedCrop", "HorizontalFlip", "VerticalFlip"]  # §3: random flipping and cropping
    default = {type(t).__name__ for t in build_transforms("default", 64, train=True).transforms}
    assert not ({"RandomRotate90", "ColorJitter"} & set(steps)) and {"RandomRotate90", "ColorJitter"} & default


# --- §2.3 both stages from the same weights -------------------------------------------------------------------

def test_both_example_stages_resolve_to_the_same_pretrained_weights(monkeypatch):
    monkeypatch.chdir(REPO)
    one = parse("-c", DDS / "base.yaml", "-c", DDS / "stage1_example.yaml").model.init_args
    two = parse("-c", DDS / "base.yaml", "-c", DDS / "stage2_example.yaml", "--model.init_args.object_size",
                "runs/x.ckpt").model.init_args
    assert one.aux_layers is None and two.aux_layers == "auto"
    assert one.pretrained_weights == two.pretrained_weights == "weights/vgg13_bn.tv_in1k.safetensors"
    assert one.backbone == two.backbone == "vgg13_bn"


def last_value(args: list[str], key: str) -> str:
    """The value the CLI ends with for ``--key`` (the last one given wins)."""
    return [args[i + 1] for i, a in enumerate(args) if a == key][-1]


def test_table1_stage2_cells_start_from_their_stage1_cells_weights(monkeypatch):
    from dermlab.grid import runner, spec

    monkeypatch.chdir(REPO)
    grid = spec.load("experiments/dds/tables/table1.yaml")
    key = "--model.init_args.pretrained_weights"
    pairs = 0
    for cell in grid.cells():
        if cell.values["model.init_args.aux_layers"] != "Proposed":
            continue
        stage1 = grid.referenced(cell, "@cell(aux_layers=Proposed*)")
        for synthetic in (False, True):
            args = [runner.cell_args(grid, c, REPO / "runs" / "x" / c.id, "data/x", [], synthetic)
                    for c in (stage1, cell)]
            assert last_value(args[0], key) == last_value(args[1], key) != "null", (cell.id, synthetic)
            if cell.values["dataset"] == "isic2016" and not synthetic:  # the parsed config agrees
                weights = [parse(*a).model.init_args.pretrained_weights for a in args]
                assert weights[0] == weights[1] == last_value(args[0], key)
        pairs += 1
    assert pairs == 8  # 4 data sets × 2 backbones


# --- Table 2: an explicit L28 row; the data-driven row is labelled with its layer ----------------------------

def test_table2_trains_an_explicit_l28_row_beside_the_data_driven_one(monkeypatch):
    from dermlab.grid import runner, spec

    monkeypatch.chdir(REPO)
    grid = spec.load("experiments/dds/tables/table2_ablation.yaml")
    rows = {cell.row(grid.rows): cell for cell in grid.cells()}
    for dataset in ("isic2016", "vitiligo"):
        for variant in ("R / L28 / TL", "R / L28 / no TL", "V / L28 / TL"):
            cell = rows[f"{dataset} / {variant}"]
            config = parse(*runner.cell_args(grid, cell, REPO / "runs" / "x" / cell.id, "data/x", []))
            assert config.model.init_args.aux_layers == ["L28"]
            assert (config.model.init_args.pretrained_weights is None) == variant.endswith("no TL")
    assert grid.paper_values["isic2016 / R / L28 / TL"]["test/auc"] == 0.837  # the paper's L28 row (Table 2)


def test_report_labels_each_data_driven_row_with_the_layer_it_chose(tmp_path, monkeypatch):
    from dermlab.grid import report, spec

    monkeypatch.chdir(REPO)
    grid = spec.load("experiments/dds/tables/table2_ablation.yaml")
    root = grid.run_root(tmp_path, False)
    chosen = {"isic2016": "L24", "vitiligo": "L28"}
    for cell in grid.cells():
        if cell.values["variant"] not in ("R / data-driven / TL", "R / L28 / TL"):
            continue
        folder = root / cell.id
        folder.mkdir(parents=True)
        (folder / "result.json").write_text(json.dumps({"metrics": {"test/auc": 0.8, "test/accuracy": 0.7,
                                                                    "test/sensitivity": 0.5,
                                                                    "test/specificity": 0.9}}))
        if cell.values["variant"] == "R / data-driven / TL":  # what LayerSelection writes
            layer = chosen[cell.values["dataset"]]
            (folder / "layer_selection.json").write_text(json.dumps({"layer": f"features.{layer[1:]}",
                                                                     "paper_name": layer}))
    text = report.report(grid, runs=tmp_path)
    assert "| isic2016 / R / data-driven / TL → L24 | 0.80 | 0.84 | -0.04 |" in text
    assert "| vitiligo / R / data-driven / TL → L28 | 0.80 | 1.00 | -0.20 |" in text
    assert "| isic2016 / R / L28 / TL | 0.80 | 0.84 |" in text  # explicit layers: no choice to print
    assert "| isic2016 / R / L24 / TL | missing |" in text
    csv = (grid.report_root(tmp_path, False) / "report.csv").read_text()
    assert "isic2016 / R / data-driven / TL,L24,test/auc" in csv


def test_a_row_whose_seeds_chose_different_layers_lists_both():
    import pandas as pd

    from dermlab.grid.report import choices, label

    group = pd.DataFrame({"status": ["done", "done", "done", "failed"], "chosen": ["L24", "L28", "L24", "L31"]})
    assert label("isic2016 / Proposed", choices(group)) == "isic2016 / Proposed → L24, L28"
    assert label("isic2016 / Proposed*", "") == "isic2016 / Proposed*"


# --- §2.1 LERF: signed / absolute ∂q/∂p and the centre node summed over channels -----------------------------

def hand_conv() -> nn.Module:
    """One 3×3 conv, 3 → 2 channels, no bias. Output channel 0 looks at the centre of input channel 0 (weight 1);
    output channel 1 at its top-left (0.5) and bottom-right (−0.5) corners. For the centre node of a 5×5 output
    summed over both channels, ∂q/∂p at input rows/cols 1..3 is [[0.5, 0, 0], [0, 1, 0], [0, 0, −0.5]]."""
    conv = nn.Conv2d(3, 2, 3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 1, 1] = 1.0
        conv.weight[1, 0, 0, 0] = 0.5
        conv.weight[1, 0, 2, 2] = -0.5
    return nn.Sequential(conv)


@pytest.mark.parametrize("gradient,count,expected_map", [
    ("signed", 2, [[0.5, 0, 0], [0, 1, 0], [0, 0, -0.5]]),   # the paper's ∂q/∂p > th: the −0.5 pixel is out
    ("abs", 3, [[0.5, 0, 0], [0, 1, 0], [0, 0, 0.5]]),       # |∂q/∂p| > th: it is in
])
def test_lerf_of_a_hand_set_conv_in_both_gradient_readings(gradient, count, expected_map):
    from lightning_modules.nets.lerf import gradient_maps, lerf_size

    values = gradient_maps(hand_conv(), ["0"], 5, torch.Generator().manual_seed(0), gradient=gradient)["0"]
    expected = np.zeros((5, 5))
    expected[1:4, 1:4] = expected_map
    np.testing.assert_allclose(values, expected, atol=1e-7)
    # channel 0 alone would see only the centre pixel (LERF 1); the node sums both channels
    assert lerf_size(values) == pytest.approx(math.sqrt(count))


def test_the_centre_node_sums_every_channel_of_the_layer():
    from lightning_modules.nets.lerf import gradient_maps

    net = hand_conv()
    with torch.no_grad():
        net[0].weight[0].zero_()  # channel 0 blind: a channel-0 node would have no gradient at all
    values = gradient_maps(net, ["0"], 5, torch.Generator().manual_seed(0), gradient="abs")["0"]
    assert values[1, 1] == pytest.approx(1.0) and values[3, 3] == pytest.approx(1.0) and values.sum() == 2.0


def test_signed_lerf_counts_fewer_pixels_than_abs_and_unknown_readings_fail():
    from lightning_modules.nets.lerf import lerf

    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU())
    signed, _ = lerf(net, size=15, inits=10, gradient="signed")
    absolute, _ = lerf(net, size=15, inits=10, gradient="abs")
    assert absolute["0"] == pytest.approx(3.0, abs=0.05)  # all 9 pixels of the 3×3 kernel
    assert 1.0 <= signed["0"] < 2.9  # He weights are negative at about half the taps
    with pytest.raises(ValueError, match="signed"):
        lerf(net, size=15, inits=1, gradient="square")


def test_the_gradient_reading_reaches_the_layer_choice_and_its_cache(tmp_path, monkeypatch):
    from callbacks import layer_selection
    from lightning_modules import DeeplySupervisedClassifier

    assert lerf_cache_path(tmp_path, "vgg13_bn", 224, 20, 0, "signed") != \
        lerf_cache_path(tmp_path, "vgg13_bn", 224, 20, 0, "abs")
    seen = []
    monkeypatch.setattr("lightning_modules.nets.lerf_table.lerf",
                        lambda *a, **k: (seen.append(k["gradient"]), ({"a": 1.0}, {}))[1])
    for gradient in ("signed", "abs"):
        layer_selection.lerf_table("test_resnet", 32, 1, 0, tmp_path, gradient)
    assert seen == ["signed", "abs"]
    for gradient, default in (("abs", False), ("signed", True)):
        args = {} if default else {"lerf_gradient": gradient}
        module = DeeplySupervisedClassifier(aux_layers="auto", object_size=60.0, backbone="test_resnet",
                                            num_classes=2, **args)
        selection = [c for c in module.configure_callbacks() if isinstance(c, layer_selection.LayerSelection)]
        assert selection[0].lerf_gradient == gradient
        old = {"source_arg": 60.0, "layer": "x"}  # a record from before the option: it was |∂q/∂p|
        assert selection[0].reusable(old, 60.0) == (gradient == "abs")


# --- §2.3 VGG-type classifier with dropout --------------------------------------------------------------------

def test_vgg13_fc6_and_fc7_drop_out_in_training_only():
    from lightning_modules import DeeplySupervisedClassifier
    from lightning_modules.nets.recipes import set_vgg_dropout

    torch.manual_seed(0)  # fc6/fc7 exist with main_head: vgg_mlp (the default gap_fc has none: test_fidelity_dds_heads)
    module = DeeplySupervisedClassifier(aux_layers=["L28"], aux_classifier="vgg", backbone="vgg13_bn",
                                        num_classes=2, main_head="vgg_mlp")
    base = module.net.base
    assert base.pre_logits.drop.p == base.head.drop.p == 0.5  # after fc6 and after fc7 (VGG [21])
    assert module.hparams.vgg_dropout == 0.5 and module.hparams.lerf_gradient == "signed"  # checkpoints rebuild it
    assert [m.p for m in module.net.heads["features_28"] if isinstance(m, nn.Dropout)] == [0.5, 0.5]
    features = torch.randn(1, 512, 7, 7)
    base.train()
    hidden = [base.pre_logits(features) for _ in range(2)]
    assert not torch.equal(*hidden)  # dropout after fc6 is active
    pooled = torch.rand(1, 4096, 1, 1) + 0.1
    assert not torch.equal(base.head(pooled), base.head(pooled))  # and after fc7, before fc8
    base.eval()
    assert torch.equal(base.pre_logits(features), base.pre_logits(features))
    set_vgg_dropout(base, 0.0)  # timm's default, as the option vgg_dropout: 0
    assert base.pre_logits.drop.p == base.head.drop.p == 0.0
    base.train()
    assert torch.equal(base.pre_logits(features), base.pre_logits(features))
