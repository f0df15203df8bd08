"""isic2018 tasks 2 and 3 (paper 002 §2-3): attribute masks + presence, the task 2 metric, minority/majority
triplets, the triplet loss, nearest-class-mean prediction, and short runs that learn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from dermlab.challenge.scoring import score_segmentation
from dermlab.metrics.segmentation import SegmentationScores, attribute_jaccard
from lightning_modules.attributes import presence_targets
from lightning_modules.nets.embedding import minority_triplets, nearest_class_mean
from tests.conftest import REPO

MEL, NV, BCC, DF = 0, 1, 2, 5


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


def test_task2_metric_matches_the_official_scorer(tmp_path):
    """Per attribute: pixel counts normalised per image, summed over images; overall: over all attributes."""
    from isic_challenge_scoring import task2

    truth_dir, prediction_dir = tmp_path / "truth", tmp_path / "pred"
    truth_dir.mkdir()
    prediction_dir.mkdir()
    rng = np.random.default_rng(0)
    names = ("globules", "streaks")
    metric = SegmentationScores(names)
    for number, size in enumerate([(20, 30), (40, 24), (16, 16)]):
        truths = rng.random((2, *size)) < 0.2
        predictions = truths ^ (rng.random((2, *size)) < 0.1)
        if number == 2:
            truths[1], predictions[1] = False, False  # streaks absent and not predicted
        for k, name in enumerate(names):
            stem = f"ISIC_{number:07d}_attribute_{name}.png"
            Image.fromarray(truths[k].astype(np.uint8) * 255).save(truth_dir / stem)
            Image.fromarray(predictions[k].astype(np.uint8) * 255).save(prediction_dir / stem)
        metric.update(torch.tensor(predictions, dtype=torch.float32)[None],
                      torch.tensor(truths, dtype=torch.float32)[None])
    official = task2.score(truth_dir, prediction_dir)
    ours = score_segmentation(truth_dir, prediction_dir)
    module = metric.compute()
    assert ours["attribute_jaccard"] == pytest.approx(official["overall"], abs=1e-12)
    assert module["attribute_jaccard"].item() == pytest.approx(official["overall"], abs=1e-9)
    for name in names:
        assert ours["per_attribute"][name] == pytest.approx(official[name]["jaccard"], abs=1e-12)
        assert module[f"jaccard_{name}"].item() == pytest.approx(official[name]["jaccard"], abs=1e-9)


def test_attribute_jaccard_by_hand():
    """Image 1 (4 px): tp 1, fp 1, fn 0; image 2 (2 px): tp 1, fn 1 → normalised sums tp 0.75, fp 0.25, fn 0.5."""
    counts = torch.tensor([[[1.0, 1.0, 2.0, 0.0]], [[1.0, 0.0, 0.0, 1.0]]], dtype=torch.float64)
    per_attribute, overall = attribute_jaccard(counts)
    assert per_attribute.item() == pytest.approx(0.75 / 1.5) and overall.item() == pytest.approx(0.5)


# --- task 3: triplets, loss, nearest class mean ---------------------------------------------------------------
def test_triplets_obey_the_minority_majority_roles_and_take_the_hardest_negative():
    labels = torch.tensor([NV, MEL, MEL, BCC, BCC, NV, DF, NV])
    embeddings = torch.tensor([[5.0, 0], [0, 0], [1, 0], [0, 3], [0, 4], [2, 0], [9, 9], [0, 6]])
    anchors, positives, negatives = minority_triplets(embeddings, labels, NV)
    pairs = {(int(a), int(p)) for a, p in zip(anchors, positives, strict=True)}
    assert pairs == {(1, 2), (2, 1), (3, 4), (4, 3)}  # ordered same-class minority pairs; DF has no partner
    assert all(labels[n] == NV for n in negatives)
    nv = torch.nonzero(labels == NV).view(-1)
    for a, n in zip(anchors, negatives, strict=True):
        distances = ((embeddings[nv] - embeddings[a]) ** 2).sum(1)
        assert n == nv[distances.argmin()]  # the closest NV image
    assert {int(a): int(n) for a, n in zip(anchors, negatives, strict=True)} == {1: 5, 2: 5, 3: 7, 4: 7}
    none = minority_triplets(embeddings[:1], labels[:1], NV)
    assert all(len(t) == 0 for t in none)


def test_triplet_loss_on_a_hand_example():
    """Eq. 4 with squared distances, α = 1: anchor 0, positive 1, negative 2 → (1 + 1 − 4)₊ = 0;
    anchor 0, positive 3, negative 2 → (9 + 1 − 4)₊ = 6; mean over the two triplets = 3 (sum = 6)."""
    from lightning_modules.triplet import TripletClassifier

    module = TripletClassifier(backbone="test_resnet", num_classes=7, class_names=("MEL", "NV", "BCC", "AKIEC",
                                                                                   "BKL", "DF", "VASC"), margin=1.0)
    embeddings = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    labels = torch.tensor([MEL, MEL, NV, MEL])
    triplets = (torch.tensor([0, 0]), torch.tensor([1, 3]), torch.tensor([2, 2]))
    assert module.triplet_loss(embeddings, labels, indices_tuple=triplets).item() == pytest.approx(3.0)
    module_sum = TripletClassifier(backbone="test_resnet", num_classes=7, class_names=module.class_names, margin=1.0,
                                   triplet_reduction="sum")
    assert module_sum.triplet_loss(embeddings, labels, indices_tuple=triplets).item() == pytest.approx(6.0)


def test_nearest_class_mean_on_a_toy_embedding():
    """Class 0's references sit at 0 and 4 (mean distance from 1: (1 + 3)/2 = 2), class 1's at 2.5 and 2.5
    (from 1: 1.5): 1 goes to class 1 although class 0 has the nearest single sample."""
    references = torch.tensor([[[0.0], [4.0]], [[2.5], [2.5]]])
    assert nearest_class_mean(torch.tensor([[1.0], [-1.0], [3.0]]), references).tolist() == [1, 0, 1]


def test_triplet_epochs_follow_triplet_every():
    from lightning_modules.triplet import TripletClassifier

    names = ("MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC")
    module = TripletClassifier(backbone="test_resnet", num_classes=7, class_names=names, triplet_every=10)
    epochs = []
    for epoch in range(30):
        module.trainer = type("T", (), {"current_epoch": epoch})()
        if module.triplet_epoch():
            epochs.append(epoch)
    assert epochs == [9, 19, 29]
    with pytest.raises(ValueError, match="majority_class"):
        TripletClassifier(backbone="test_resnet", num_classes=7, class_names=names, majority_class="XX")


# --- short runs that learn ------------------------------------------------------------------------------
def test_attribute_segmenter_learns_synthetic_attributes_and_writes_official_files(tmp_path):
    """Multi-task SE-VGG stand-in, 8 epochs on 200 synthetic task 2 images (56 px, with the soft-Dice term the
    synthetic grid uses): the task 2 Jaccard beats an all-background prediction (0) with margin, and predict
    writes ISIC_xxxxxxx_attribute_<name>.png at full size."""
    from datamodules.synthetic import write_synthetic
    from dermlab.commands.trainer import build_cli

    root = tmp_path / "isic2018"
    write_synthetic("isic2018_task2", root, n=200, size=64, seed=0)
    common = ["-c", str(REPO / "experiments/isic2018/attributes.yaml"), "--data.init_args.root", str(root),
              "--data.init_args.train_transforms", str(REPO / "experiments/base/augment/isic2018_attr_cpu.yaml"),
              "--data.init_args.eval_transforms", str(REPO / "experiments/base/augment/isic2018_attr_cpu_eval.yaml"),
              "--data.init_args.batch_size", "8", "--data.init_args.num_workers", "0", "--trainer.max_epochs", "8",
              "--model.init_args.encoder", "vgg_tiny_bn", "--model.init_args.decoder_channels", "[64, 32, 16, 8, 8]",
              "--model.init_args.dice_weight", "1.0", "--trainer.default_root_dir", str(tmp_path / "run"),
              "--run.wandb", "disabled"]
    cli = build_cli(["fit", *common])
    tested = cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path="best", verbose=False)[0]
    assert tested["test/attribute_jaccard"] > 0.15
    assert tested["test/jaccard_pigment_network"] > 0.15
    build_cli(["predict", *common, "--ckpt_path", cli.trainer.checkpoint_callback.best_model_path])
    truth_dir = root / "ISIC2018_Task2_Validation_GroundTruth"
    written = sorted(p.name for p in (tmp_path / "run" / "masks_test").glob("*.png"))
    assert written == sorted(p.name for p in truth_dir.glob("*.png"))
    assert score_segmentation(truth_dir, tmp_path / "run" / "masks_test")["attribute_jaccard"] > 0.15


def test_triplet_classifier_learns_and_writes_both_submissions(tmp_path):
    """ResNet-18 from random init, 6 epochs with a triplet epoch every 2, class-balanced batches, on 400
    synthetic task 3 images: both prediction rules beat chance (1/7) with margin; predict writes the softmax
    and the nearest-class-mean submission CSVs in the official layout."""
    from datamodules.synthetic import write_synthetic
    from dermlab.commands.trainer import build_cli

    root = tmp_path / "isic2018"
    write_synthetic("isic2018_task3", root, n=400, size=64, seed=0)
    common = ["-c", str(REPO / "experiments/isic2018/triplet.yaml"), "--data.init_args.root", str(root),
              "--data.init_args.train_transforms", str(REPO / "experiments/base/augment/isic2018_triplet_cpu.yaml"),
              "--data.init_args.eval_transforms",
              str(REPO / "experiments/base/augment/isic2018_triplet_cpu_eval.yaml"),
              "--data.init_args.batch_size", "28", "--data.init_args.sampling", "balanced",
              "--data.init_args.minority_pairs", "0", "--data.init_args.val_size", "60",
              "--data.init_args.num_workers", "0", "--trainer.max_epochs", "6", "--model.init_args.backbone",
              "resnet18", "--model.init_args.triplet_every", "2", "--model.init_args.optimizer.init_args.lr", "0.01",
              "--trainer.default_root_dir", str(tmp_path / "run"), "--run.wandb", "disabled"]
    cli = build_cli(["fit", *common])
    assert cli.trainer.callback_metrics["train/triplets"] > 0
    tested = cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path="best", verbose=False)[0]
    assert tested["test/ncm_balanced_accuracy"] > 0.25
    assert max(tested["test/balanced_accuracy"], tested["test/ncm_balanced_accuracy"]) > 0.3
    build_cli(["predict", *common, "--ckpt_path", cli.trainer.checkpoint_callback.best_model_path])
    softmax = pd.read_csv(tmp_path / "run" / "submission_test.csv")
    ncm = pd.read_csv(tmp_path / "run" / "submission_test_ncm.csv")
    assert list(softmax.columns) == list(ncm.columns) == ["image", "MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"]
    assert np.allclose(softmax.iloc[:, 1:].sum(1), 1, atol=1e-4) and set(np.unique(ncm.iloc[:, 1:])) <= {0.0, 1.0}
    assert (ncm.iloc[:, 1:].sum(1) == 1).all()


def test_task3_takes_extra_minority_images_from_a_csv(synthetic, tmp_path):
    """The paper adds 162 Dermofit VASC / DF images to training: a CSV in the task 3 layout plus its images."""
    import shutil

    from datamodules.isic2018 import ISIC2018Task3DataModule

    root = synthetic("isic2018_task3")
    source = next((root / "ISIC2018_Task3_Training_Input").glob("*.jpg"))
    extra = tmp_path / "dermofit"
    extra.mkdir()
    for name in ("DF_0001", "VASC_0002"):
        shutil.copy(source, extra / f"{name}.jpg")
    pd.DataFrame({"image": ["DF_0001", "VASC_0002"], "MEL": 0.0, "NV": 0.0, "BCC": 0.0, "AKIEC": 0.0, "BKL": 0.0,
                  "DF": [1.0, 0.0], "VASC": [0.0, 1.0]}).to_csv(extra / "extra.csv", index=False)
    plain = ISIC2018Task3DataModule(str(root), num_workers=0).table("train")
    data = ISIC2018Task3DataModule(str(root), num_workers=0, extra_train_csv=str(extra / "extra.csv"))
    train = data.table("train")
    assert len(train) == len(plain) + 2 and train.ids[-2:] == ["DF_0001", "VASC_0002"]
    assert [data.class_names[i] for i in train.labels[-2:]] == ["DF", "VASC"]


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
