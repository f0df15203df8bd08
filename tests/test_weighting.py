"""weighting paper (004): focal loss (Eq. 6), CB / ES class weights (Eq. 7–8) on the real HAM10000 counts,
the SPL / OHEM curricula (Eq. 9), the hierarchical label paths and per-level loss (Eq. 10), CBAM shapes."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import timm
import torch
import torch.nn.functional as F

from callbacks.curriculum import Curriculum, kept_count
from lightning_modules.losses import class_weights, focal_loss
from lightning_modules.nets.cbam import (
    LEAVES,
    ConditionedCBAM,
    FlatCBAMClassifier,
    HierarchicalCBAMClassifier,
    features_only,
    label_path,
)
from tests.conftest import REPO

SHARED_HAM = Path(__file__).resolve().parents[2] / "shared" / "data" / "ham10000"


def test_focal_loss_is_cross_entropy_at_gamma_zero_and_matches_a_hand_value():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    target = torch.tensor([0, 1])
    assert torch.allclose(focal_loss(logits, target, 0.0), F.cross_entropy(logits, target, reduction="none"))
    p = math.exp(2) / (math.exp(2) + 1 + math.exp(-1))  # p_y of the first sample
    assert focal_loss(logits, target, 2.0)[0].item() == pytest.approx(-(1 - p) ** 2 * math.log(p), rel=1e-6)


def test_cb_and_es_weights_on_the_real_ham10000_counts():
    table = pd.read_csv(SHARED_HAM / "HAM10000_metadata.csv")
    counts = [int((table.dx == c.lower()).sum()) for c in LEAVES]
    assert counts == [1113, 6705, 514, 327, 1099, 115, 142]
    n = 10015
    cb = [n / c for c in counts]  # Eq. 7
    beta = (n - 1) / n
    es = [(1 - beta) / (1 - beta ** c) for c in counts]  # Eq. 8
    assert class_weights(counts, "inverse").tolist() == pytest.approx([7 * w / sum(cb) for w in cb], rel=1e-5)
    assert class_weights(counts, "effective_number").tolist() == pytest.approx([7 * w / sum(es) for w in es], rel=1e-5)
    # ES is gentler than CB: the rarest class (DF) against the most common (NV)
    ratio_cb = class_weights(counts, "inverse")[5] / class_weights(counts, "inverse")[1]
    ratio_es = class_weights(counts, "effective_number")[5] / class_weights(counts, "effective_number")[1]
    assert ratio_cb == pytest.approx(6705 / 115, rel=1e-5) and 1 < ratio_es < ratio_cb
    assert es[5] == pytest.approx((1 / n) / (1 - (1 - 1 / n) ** 115), rel=1e-9)


def test_kept_count_schedule():
    assert kept_count(20, 0, 150) == 10  # M/2 at e = 0
    assert [kept_count(20, e, 150) for e in range(75, 150)] == [20] * 75  # everyone from the second half on
    values = [kept_count(20, e, 150) for e in range(150)]
    assert values == sorted(values) and values[30] < 20
    assert kept_count(7, 0, 10) == 4  # ⌈7/2⌉


def test_spl_keeps_the_easiest_and_ohem_the_hardest():
    losses = torch.tensor([0.5, 3.0, 0.1, 2.0, 1.0, 0.7])
    labels = torch.tensor([0, 0, 1, 1, 1, 0])
    spl, ohem = Curriculum("spl"), Curriculum("ohem")
    for callback in (spl, ohem):
        callback.max_epochs, callback.epoch = 10, 0
    assert spl.select(losses, labels).tolist() == [1, 0, 1, 0, 0, 1]  # the 3 lowest: 0.1, 0.5, 0.7
    assert ohem.select(losses, labels).tolist() == [0, 1, 0, 1, 1, 0]  # the 3 highest: 3.0, 2.0, 1.0
    per_class = Curriculum("ohem", per_class=True)
    per_class.max_epochs, per_class.epoch = 10, 0
    assert per_class.select(losses, labels).tolist() == [0, 1, 0, 1, 1, 1]  # ⌈3/2⌉ = 2 hardest of each class
    ohem.epoch = 5
    assert ohem.select(losses, labels).tolist() == [1] * 6


def test_hierarchical_label_paths_for_all_seven_classes():
    paths = {leaf: [node for node, _ in label_path(leaf)] for leaf in LEAVES}
    assert paths["MEL"] == paths["NV"] == ["lesion", "melanocytic"]  # 2 levels for melanocytic lesions
    for leaf in ("BCC", "AKIEC"):
        assert paths[leaf] == ["lesion", "non_melanocytic", "malignant"]  # 3 levels for non-melanocytic
    for leaf in ("BKL", "DF", "VASC"):
        assert paths[leaf] == ["lesion", "non_melanocytic", "benign"]
    assert label_path("DF") == [("lesion", 1), ("non_melanocytic", 0), ("benign", 1)]


def test_per_level_loss_is_the_sum_over_the_true_path_and_leaves_multiply():
    torch.manual_seed(0)
    nodes = {node: torch.randn(2, n).log_softmax(-1) for node, n in
             (("lesion", 2), ("melanocytic", 2), ("non_melanocytic", 2), ("benign", 3), ("malignant", 2))}
    labels = torch.tensor([LEAVES.index("NV"), LEAVES.index("VASC")])
    loss = HierarchicalCBAMClassifier.path_loss(nodes, labels)
    assert loss[0].item() == pytest.approx(-(nodes["lesion"][0, 0] + nodes["melanocytic"][0, 1]).item())
    assert loss[1].item() == pytest.approx(-(nodes["lesion"][1, 1] + nodes["non_melanocytic"][1, 0]
                                             + nodes["benign"][1, 2]).item())
    leaves = HierarchicalCBAMClassifier.leaf_log_probs(nodes).exp()
    assert torch.allclose(leaves.sum(1), torch.ones(2))
    assert leaves[1, LEAVES.index("VASC")].item() == pytest.approx(math.exp(-loss[1].item()))


def test_cbam_shapes():
    images = torch.randn(2, 3, 64, 64)
    flat = FlatCBAMClassifier(features_only(timm.create_model("test_resnet")), 7)
    assert flat(images).shape == (2, 7)
    assert flat.maps.spatial.shape == (2, 2, 2) and flat.maps.channel.shape == (2, flat.backbone.num_features)
    conditioned = ConditionedCBAM(64, 16)
    pooled, spatial, channel = conditioned(torch.randn(2, 64, 5, 5), torch.randn(2, 16))
    assert pooled.shape == (2, 64) and spatial.shape == (2, 5, 5) and channel.shape == (2, 64)
    assert float(spatial.min()) >= 0 and float(spatial.max()) <= 1
    hierarchical = HierarchicalCBAMClassifier(features_only(timm.create_model("test_resnet")), hidden=16)
    assert hierarchical(images).shape == (2, 7)
    spatial, channel = hierarchical.last_decision_maps(torch.tensor([0, 6]))
    assert spatial.shape == (2, 2, 2) and torch.equal(spatial[1], hierarchical.node_maps["benign"][0][1])


def test_vgg16_features_only_drops_the_fully_connected_layers():
    vgg = features_only(timm.create_model("vgg16"))
    assert sum(p.numel() for p in vgg.parameters()) == 14_714_688  # the 13 conv layers only
    assert vgg.forward_features(torch.randn(1, 3, 64, 64)).shape == (1, 512, 2, 2)


def test_ohem_by_config_alone_with_arl_cnn14(isic2017_root, tmp_path):
    """Any method takes the curriculum from experiments/weighting/ohem.yaml, here ARL-CNN14 (the arl paper)."""
    from dermlab.commands.trainer import build_cli

    cli = build_cli(["fit", "-c", str(REPO / "experiments" / "arl" / "base.yaml"),
                     "-c", str(REPO / "experiments" / "weighting" / "ohem.yaml"),
                     "--data.init_args.root", str(isic2017_root), "--data.init_args.image_size", "32",
                     "--data.init_args.batch_size", "8", "--data.init_args.num_workers", "0",
                     "--data.init_args.train_repeats", "1", "--data.init_args.eval_views", "2",
                     "--model.init_args.backbone", "arl_cnn14", "--trainer.max_epochs", "4",
                     "--trainer.accelerator", "cpu", "--trainer.default_root_dir", str(tmp_path / "run"),
                     "--run.wandb", "disabled"])
    curriculum = [c for c in cli.trainer.callbacks if isinstance(c, Curriculum)]
    assert len(curriculum) == 1 and curriculum[0].mode == "ohem"
    assert cli.trainer.callback_metrics["curriculum/m_full_batch"] == 8  # the last epoch (e = 3 ≥ E/2): all M
    metrics = pd.read_csv(next((tmp_path / "run").rglob("metrics.csv")))
    first = metrics.dropna(subset=["curriculum/m_full_batch"])["curriculum/m_full_batch"].tolist()
    assert first[0] == 4  # e = 0: M/2 of the batch of 8


def test_cbam_maps_of_a_flat_and_a_hierarchical_run(synthetic, tmp_path):
    """Fig. 3–4: both models trained for one epoch on tiny synthetic HAM10000, then `dermlab cbam-maps`."""
    from dermlab.commands.cbam_maps import main as cbam_maps
    from dermlab.commands.trainer import build_cli

    root = str(synthetic("ham10000"))
    common = ["--data.init_args.root", root, "--data.init_args.split", "weighting", "--data.init_args.image_size", "32",
              "--data.init_args.batch_size", "4", "--data.init_args.num_workers", "0",
              "--model.init_args.backbone", "test_resnet", "--trainer.max_epochs", "1", "--trainer.accelerator", "cpu",
              "--run.wandb", "disabled"]
    runs = []
    base = str(REPO / "experiments/weighting/base.yaml")
    hierarchical = str(REPO / "experiments/weighting/hierarchical.yaml")
    for name, configs in (("flat", ["-c", base]),
                          ("hierarchical", ["-c", base, "-c", hierarchical, "--model.init_args.lstm_hidden", "16"])):
        cli = build_cli(["fit", *configs, *common, "--trainer.default_root_dir", str(tmp_path / name)])
        runs.append(cli.trainer.checkpoint_callback.best_model_path or cli.trainer.checkpoint_callback.last_model_path)
        assert runs[-1]
    out = cbam_maps(["-c", base, "--run", runs[0], "--run", runs[1], "--labels", "flat", "hier",
                     "--out", str(tmp_path / "maps"), "--data.init_args.root", root,
                     "--data.init_args.split", "weighting", "--data.init_args.image_size", "32",
                     "--data.init_args.num_workers", "0"])
    assert (out / "hardest.png").is_file() and (out / "easiest.png").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("model", ["flat", "hierarchical"])
def test_each_model_learns_the_synthetic_ham_task(model, tmp_path):
    """ResNet-18 features + CBAM (flat) or + conditioned CBAM + LSTM (hierarchical) on 640 synthetic HAM10000
    images at 64 px, the 80/20 lesion split, balanced batches of 14, Adam 1e-3, 6 epochs, the last epoch tested.
    Seeds 0/1/2 gave BAcc 0.614 / 0.596 / 0.711 (flat) and 0.526 / 0.560 / 0.662 (hierarchical), macro AUC
    0.745–0.769 (chance BAcc 1/7 = 0.143); the bars 0.40 and 0.70 sit below every seed."""
    from datamodules.synthetic import write_synthetic
    from dermlab.commands.trainer import build_cli

    root = tmp_path / "ham"
    write_synthetic("ham10000", root, n=640, size=128, seed=0)
    configs = ["-c", str(REPO / "experiments/weighting/base.yaml")]
    if model == "hierarchical":
        configs += ["-c", str(REPO / "experiments/weighting/hierarchical.yaml"), "--model.init_args.lstm_hidden", "128"]
    cli = build_cli(["fit", *configs, "--data.init_args.root", str(root), "--data.init_args.image_size", "64",
                     "--data.init_args.num_workers", "0", "--data.init_args.batch_size", "14",
                     "--data.init_args.sampling", "balanced", "--model.init_args.backbone", "resnet18",
                     "--model.init_args.optimizer.init_args.lr", "1e-3",
                     "--model.init_args.scheduler.init_args.milestones", "[100]", "--trainer.max_epochs", "6",
                     "--trainer.accelerator", "cpu", "--trainer.default_root_dir", str(tmp_path / "run"),
                     "--run.wandb", "disabled"])
    result = cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path="last", verbose=False)[0]
    assert result["test/balanced_accuracy"] > 0.40 and result["test/auc"] > 0.70


def test_paper_settings_in_the_base_config():
    import yaml

    config = yaml.safe_load((REPO / "experiments/weighting/base.yaml").read_text())
    data, model = config["data"]["init_args"], config["model"]["init_args"]
    assert (data["image_size"], data["batch_size"], data["split"]) == (299, 20, "weighting")
    assert model["optimizer"]["init_args"]["lr"] == 1.0e-5
    assert model["scheduler"]["init_args"]["milestones"] == [75, 112]
    assert config["trainer"]["max_epochs"] == 150
