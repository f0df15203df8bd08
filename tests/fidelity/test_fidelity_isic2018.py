"""Issue #17, paper ``isic2018`` (002) against the code: tasks 1–2 (§1–2, Tables 1–2), then task 3 (§3, Table 3).

Tasks 1–2 — §1: "we first fix the weights of the pre-trained VGG net for 50 epochs", "a linear learning rate
schedule", "randomly rotate the image with 90, 180, 270 degrees", "remove the isolated small regions", Table 1 (the
challenge's thresholded Jaccard of full-size masks); §2: task 2 "based on task 1 result", Table 2.

Task 3 — minority pairs in the batches, a margin that matters, both readings of "alongside", the checkpoint picked
by the nearest-class-mean rule, and Table 3 evaluated on the released 193-image validation set.
"""

from __future__ import annotations

import math
import shutil
from types import SimpleNamespace

import albumentations as A
import lightning.pytorch as L
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch import nn

from callbacks.segmentation import FreezeEncoder, MaskWriter
from datamodules.quarter_turns import RandomQuarterTurn
from datamodules.samplers import MinorityPairSampler, SeededRandomSampler
from dermlab.challenge.scoring import score_segmentation
from dermlab.imaging.postprocess import PostProcess, clean_mask
from lightning_modules.nets.embedding import EmbeddingClassifier, minority_triplets
from lightning_modules.schedules import LinearOverRun, fit_to_run
from lightning_modules.segmentation import LesionSegmenter, SegAN
from tests.conftest import REPO, SHARED_DATA, touch_images

TINY_UNET = {"architecture": "unet", "encoder": "vgg_tiny_bn", "se_blocks": True,
             "decoder_channels": [16, 8, 8, 8, 8]}
TABLES = REPO / "experiments" / "isic2018" / "tables"


# --- §1: only the pre-trained VGG is frozen ---------------------------------------------------------------------
def test_freeze_encoder_fixes_the_vgg_but_leaves_the_se_blocks_training():
    """Epoch 0 of 1 frozen: every VGG conv / BN has no gradient and BN in eval mode; the 5 SE blocks (inside the
    encoder, randomly initialised) keep their gradients and train mode. From epoch 1 everything trains."""
    from timm.layers import SEModule

    module = SegAN(**TINY_UNET, critic_width=4)
    se = [m for m in module.encoder().modules() if isinstance(m, SEModule)]
    vgg = module.pretrained_modules()
    assert len(se) == 5 and not {id(m) for s in se for m in s.modules()} & {id(m) for m in vgg}
    assert sum(p.numel() for m in vgg for p in m.parameters()) + sum(p.numel() for s in se for p in s.parameters()) \
        == sum(p.numel() for p in module.encoder().parameters())  # VGG + SE = the whole encoder
    callback = FreezeEncoder(epochs=1)
    trainer = SimpleNamespace(current_epoch=0)
    callback.on_train_epoch_start(trainer, module)
    callback.on_train_batch_start(trainer, module, None, 0)
    assert not any(p.requires_grad for m in vgg for p in m.parameters())
    assert all(not m.training for m in vgg if isinstance(m, torch.nn.BatchNorm2d))
    assert all(p.requires_grad for s in se for p in s.parameters()) and all(s.training for s in se)
    trainer.current_epoch = 1
    module.train()
    callback.on_train_epoch_start(trainer, module)
    callback.on_train_batch_start(trainer, module, None, 0)
    assert all(p.requires_grad for p in module.encoder().parameters()) and module.encoder().training


# --- §1: the linear decay spans the run -------------------------------------------------------------------------
def test_linear_decay_follows_max_epochs():
    """max_epochs 4, lr 0.1 → 1 − 0.1: epochs train at 0.1, 0.075, 0.05, 0.025 and the end value 0 comes with the
    step after the last epoch, not before (the old fixed total_iters 150 would give 0.1, 0.0993, ...)."""
    seen = []

    class Record(L.Callback):
        def on_train_epoch_start(self, trainer, module):
            seen.append(trainer.optimizers[0].param_groups[0]["lr"])

    loader = torch.utils.data.DataLoader([{"image": torch.randn(3, 32, 32), "mask": torch.ones(1, 32, 32)}] * 2,
                                         batch_size=2)
    module = LesionSegmenter(**TINY_UNET, optimizer=lambda p: torch.optim.Adam(p, lr=0.1), scheduler=LinearOverRun)
    trainer = L.Trainer(max_epochs=4, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[Record()],
                        num_sanity_val_steps=0)
    trainer.fit(module, loader)
    assert seen == pytest.approx([0.1, 0.075, 0.05, 0.025])
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.0)


def test_segan_schedules_both_optimisers_over_the_run_and_an_endless_run_is_refused():
    module = SegAN(**TINY_UNET, critic_width=4, scheduler=LinearOverRun)
    module._trainer = SimpleNamespace(max_epochs=7)
    _, schedulers = module.configure_optimizers()
    assert [s.total_iters for s in schedulers] == [7, 7]
    fixed = LinearOverRun(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0), total_iters=3)
    assert fit_to_run(fixed, SimpleNamespace(max_epochs=7)).total_iters == 3  # an explicit count stays
    with pytest.raises(ValueError, match="max_epochs"):
        fit_to_run(LinearOverRun(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)),
                   SimpleNamespace(max_epochs=-1))


def test_the_paper_configs_decay_over_max_epochs():
    import yaml

    for name in ("segan", "deeplabv3plus"):
        scheduler = yaml.safe_load((REPO / "experiments" / "isic2018" / f"{name}.yaml").read_text())["model"][
            "init_args"]["scheduler"]
        assert scheduler["class_path"] == "lightning_modules.schedules.LinearOverRun"
        assert scheduler["init_args"]["total_iters"] is None


# --- §1-2: rotation by exactly 90, 180 or 270 degrees ----------------------------------------------------------
def quarter_turns_drawn(transform: A.BasicTransform, draws: int = 600) -> list[int]:
    """k of each draw, found by comparing the output with np.rot90(image, k); the mask must match the same k."""
    image = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)  # no symmetry: every k gives another array
    mask = (np.arange(24).reshape(4, 6) % 5 == 0).astype(np.uint8)
    pipeline = A.Compose([transform], seed=0)
    found = []
    for _ in range(draws):
        out = pipeline(image=image, mask=mask)
        k = next(k for k in range(4) if np.array_equal(out["image"], np.rot90(image, k)))
        assert np.array_equal(out["mask"], np.rot90(mask, k))  # the mask turns with its image
        found.append(k)
    return found


def test_quarter_turn_never_draws_zero_and_turns_the_mask_with_the_image():
    turns = quarter_turns_drawn(RandomQuarterTurn(p=1.0))
    assert set(turns) == {1, 2, 3}
    assert all(abs(turns.count(k) / len(turns) - 1 / 3) < 0.07 for k in (1, 2, 3))
    assert 0 in quarter_turns_drawn(A.RandomRotate90(p=1.0))  # the albumentations draw the pipelines used before
    for name in ("isic2018_seg", "isic2018_attr", "isic2018_seg_cpu", "isic2018_attr_cpu"):
        text = (REPO / "experiments" / "base" / "augment" / f"{name}.yaml").read_text()
        assert "- RandomQuarterTurn: {p: 1.0}" in text and "- RandomRotate90" not in text, name


# --- §1: post-processing removes small regions; keeping only the largest part is an option ------------------------
def test_small_regions_are_removed_and_keep_largest_is_an_option():
    """100 × 100 mask: a 900 px lesion, a 100 px second part (1 % of the image) and a 4 px speck (0.04 %).
    Default (min_island 0.5 %): lesion + second part = 1000 px; keep_largest: the lesion alone, 900 px."""
    mask = np.zeros((100, 100), bool)
    mask[10:40, 10:40] = True
    mask[70:80, 70:80] = True
    mask[90:92, 5:7] = True
    default = clean_mask(mask, PostProcess(crf=False))
    assert default.sum() == 1000 and default[75, 75] and not default[90, 5]
    largest = clean_mask(mask, PostProcess(crf=False, keep_largest=True))
    assert largest.sum() == 900 and not largest[75, 75]
    assert PostProcess().keep_largest is False and PostProcess().min_island == 0.005
    assert "keep_largest: false" in (REPO / "experiments" / "isic2018" / "postprocess.yaml").read_text()


# --- Table 1: an ensemble row without the CRF ----------------------------------------------------------------------
def test_table1_has_an_ensemble_without_crf_beside_the_ensemble_with_it(monkeypatch):
    from dermlab.grid import runner, spec

    monkeypatch.chdir(REPO)
    grid = spec.load(TABLES.relative_to(REPO) / "table1_segmentation.yaml")
    cells = {c.id: c for c in grid.cells()}

    def arguments(label: str, fold: int = 0) -> list[str]:
        cell = next(c for c in cells.values() if c.values["variant"] == label and c.values[
            "data.init_args.cv_fold"] == fold)
        return runner.cell_args(grid, cell, grid.run_root(REPO / "runs", False) / cell.id, "data/x", [])

    plain, crf = arguments("VGG+Adversarial+Ensemble without CRF"), arguments("VGG+Adversarial+Ensemble")
    value = lambda args, key: args[len(args) - 1 - args[::-1].index(key) + 1]  # noqa: E731 (the last setting)
    assert value(plain, "--model.init_args.postprocess") == "null"
    assert "--model.init_args.postprocess" not in crf  # ensemble.yaml's postprocess {}: CRF + morphology
    assert value(plain, "--model.init_args.members") == value(crf, "--model.init_args.members")
    assert value(plain, "--model.init_args.members").count("variant=VGG-Adversarial__") == 4
    plain_cells = [c for c in cells.values() if c.values["variant"] == "VGG+Adversarial+Ensemble without CRF"]
    assert len(plain_cells) == 5  # one per fold, as the ensemble


# --- Tables 1-2: full-size official scoring ----------------------------------------------------------------------
class Oracle(LesionSegmenter):
    """Predicts each test image's ground-truth mask *at the network's input size* (what the eval transform makes
    of it): a perfect network-resolution prediction, so any error left is the upsampling to full size."""

    def predict_step(self, batch: dict, batch_idx: int) -> dict:
        return {"image_id": batch["image_id"], "masks": batch["mask"], "original_size": batch["original_size"]}


def test_full_size_scores_are_the_official_scoring_of_the_upsampled_masks(tmp_path):
    """MaskWriter upsamples the 84 × 74 maps to each image's original size, writes the official files and scores
    them against the official ground-truth folder; by hand: bilinear upsampling, > 0.5, per-image Jaccard, < 0.65
    → 0, mean. The network-resolution Jaccard of the oracle is 1; the full-size one is not."""
    import torch.nn.functional as F

    from datamodules.isic2018 import ISIC2018SegmentationDataModule
    from datamodules.synthetic import write_synthetic

    write_synthetic("isic2018_task1", tmp_path / "data", n=20, size=64, seed=0)
    data = ISIC2018SegmentationDataModule(
        str(tmp_path / "data"), task=1, cv_fold=0, test_set="validation", batch_size=4, num_workers=0,
        eval_transforms=str(REPO / "experiments/base/augment/isic2018_seg_cpu_eval.yaml"))
    writer = MaskWriter(output=str(tmp_path / "masks"))
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[writer], default_root_dir=tmp_path)  # its splits/ CSVs go there, not to the cwd
    trainer.predict(Oracle(**TINY_UNET), datamodule=data, return_predictions=False)
    truth_dir = tmp_path / "data" / "ISIC2018_Task1_Validation_GroundTruth"
    assert data.official_truth_folder("test") == truth_dir

    dataset = data.dataset("test", augment=False)
    jaccards = []
    for item in (dataset[i] for i in range(len(dataset))):
        truth = np.asarray(Image.open(truth_dir / f"{item['image_id']}_segmentation.png")) > 128
        assert item["mask"].shape[-2:] != truth.shape  # the network sees another size
        full = F.interpolate(item["mask"][None], size=truth.shape, mode="bilinear", align_corners=False)[0, 0] > 0.5
        jaccards.append((full.numpy() & truth).sum() / (full.numpy() | truth).sum())
    expected = np.mean([j if j >= 0.65 else 0.0 for j in jaccards])
    assert writer.scores["full/threshold_jaccard"] == pytest.approx(expected)
    assert writer.scores["full/jaccard"] == pytest.approx(np.mean(jaccards)) and np.mean(jaccards) < 1.0
    assert writer.scores["full/threshold_jaccard"] == pytest.approx(
        score_segmentation(truth_dir, tmp_path / "masks")["macro"]["threshold_jaccard"])
    assert set(writer.scores) == set(writer.metric_names(SimpleNamespace(class_names=("lesion",))))


def test_tables_1_and_2_report_the_full_size_scores():
    import yaml

    from dermlab.challenge.scoring import full_size_metric_names

    writer = MaskWriter()
    task2 = ("globules", "milia_like_cyst", "negative_network", "pigment_network", "streaks")
    for table, names in (("table1_segmentation", ("lesion",)), ("table2_attributes", task2)):
        grid = yaml.safe_load((TABLES / f"{table}.yaml").read_text())
        assert grid["predict"] is True
        full = [m for m in grid["metrics"] if m.startswith("full/")]
        assert full and set(full) <= set(full_size_metric_names(names))
        assert all(k.startswith("full/") for row in grid["paper_values"].values() for k in row)
    task1_module = SimpleNamespace(class_names=("lesion",))  # what MaskWriter reads of the module
    assert MaskWriter(score=False).metric_names(task1_module) == []
    assert writer.metric_names(task1_module) == full_size_metric_names(("lesion",))


# --- §2: task 2 starts from the task 1 run ------------------------------------------------------------------------
def test_every_table2_cell_starts_from_the_table1_segan_run_of_its_fold(monkeypatch):
    from dermlab.grid import runner, spec

    monkeypatch.chdir(REPO)
    table1 = spec.load(TABLES.relative_to(REPO) / "table1_segmentation.yaml")
    table2 = spec.load(TABLES.relative_to(REPO) / "table2_attributes.yaml")
    runs = REPO / "runs"
    for synthetic in (False, True):
        for cell in table2.cells():
            args = runner.cell_args(table2, cell, table2.run_root(runs, False) / cell.id, "data/x", [],
                                    stand_in=synthetic)
            init_from = args[args.index("--model.init_args.init_from") + 1]
            fold = cell.values["data.init_args.cv_fold"]
            source = next(c for c in table1.cells() if c.values == {
                "variant": "VGG+Adversarial", "seed_everything": 0, "data.init_args.cv_fold": fold})
            assert init_from == str(table1.run_root(runs, False) / source.id)
            assert source.id.endswith(f"cv_fold={fold}")


def test_a_cross_table_reference_with_an_unknown_or_unset_axis_is_named(monkeypatch):
    from dermlab.errors import DataError
    from dermlab.grid import spec

    monkeypatch.chdir(REPO)
    table2 = spec.load(TABLES.relative_to(REPO) / "table2_attributes.yaml")
    with pytest.raises(DataError, match="not an axis of table1_segmentation"):
        table2.referenced(table2.cells()[0], "@cell(table1_segmentation: colour=red)")
    table1 = spec.load(TABLES.relative_to(REPO) / "table1_segmentation.yaml")
    with pytest.raises(DataError, match="unset"):  # multitask is not an axis of table 1: it must be named
        table1.referenced(table1.cells()[0], "@cell(table2_attributes: cv_fold=0)")


def test_a_grid_cell_with_predict_adds_the_writers_full_size_scores_to_its_result(tmp_path, monkeypatch):
    """`grid _cell --predict`: after testing, `predict` runs and each callback's ``scores`` (MaskWriter's full/*)
    join the test metrics in result.json; without --predict they do not."""
    import json

    import dermlab.commands.trainer
    from dermlab.grid import cell

    class FakeTrainer:
        is_global_zero = True  # one process: rank 0 writes the result

        def __init__(self):
            self.checkpoint_callback = SimpleNamespace(best_model_path="", best_model_score=None)
            self.callbacks = [SimpleNamespace(scores={}), SimpleNamespace()]

        def test(self, *args, **kwargs):
            return [{"test/threshold_jaccard": 0.9}]

        def predict(self, *args, **kwargs):
            self.callbacks[0].scores = {"full/threshold_jaccard": 0.7}

    def build_cli(args, run=True):
        return SimpleNamespace(trainer=FakeTrainer(), model=None, datamodule=SimpleNamespace(split_audit=None))

    monkeypatch.setattr(dermlab.commands.trainer, "build_cli", build_cli)
    cell.run_cell_command([str(tmp_path / "a.json"), "--predict", "--"])
    cell.run_cell_command([str(tmp_path / "b.json"), "--"])
    assert json.loads((tmp_path / "a.json").read_text())["metrics"] == {"test/threshold_jaccard": 0.9,
                                                                        "full/threshold_jaccard": 0.7}
    assert json.loads((tmp_path / "b.json").read_text())["metrics"] == {"test/threshold_jaccard": 0.9}


# === task 3: triplet-loss classification ======================================================================
NAMES = ("MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC")
MEL, NV = 0, 1
# a skewed label set: NV 60, MEL 20, BCC 8, AKIEC 5, BKL 12, DF 3, VASC 2 (110 images)
SKEWED = np.repeat(np.arange(7), [20, 60, 8, 5, 12, 3, 2])


def batches_of(order, batch_size):
    order = np.asarray(order)
    return [order[i:i + batch_size] for i in range(0, len(order) - batch_size + 1, batch_size)]


# --- minority pairs in every batch -------------------------------------------------------------------------------
def test_minority_pair_batches_give_every_class_anchor_positive_pairs():
    """Batches of 16 from the skewed set with 2 per class: every batch holds ≥ 2 distinct images of each of the 7
    classes, so the paper's miner (Eq. 3) finds an anchor-positive pair of every minority class in every batch.
    Natural batches of the same set mostly miss DF or VASC pairs (the failure the issue names)."""
    sampler = MinorityPairSampler(SKEWED, batch_size=16, per_class=2, seed=3)
    sampler.set_epoch(4)
    order = list(sampler)
    assert len(order) == len(sampler) == 6 * 16
    assert all(i // len(SKEWED) == 4 for i in order)  # epoch-tagged: epoch * N + position
    for batch in batches_of(np.array(order) % len(SKEWED), 16):
        assert len(set(batch.tolist())) == 16  # distinct images: a pair never repeats one image
        assert (np.bincount(SKEWED[batch], minlength=7) >= 2).all()
        anchors, positives, negatives = minority_triplets(torch.zeros(16, 2), torch.as_tensor(SKEWED[batch]), NV)
        assert {int(SKEWED[batch][a]) for a in anchors} == {0, 2, 3, 4, 5, 6}  # every minority class anchors
        assert (SKEWED[batch][negatives.numpy()] == NV).all()
    natural = np.array(list(SeededRandomSampler(len(SKEWED), seed=3))) % len(SKEWED)
    with_rare_pairs = [min(np.bincount(SKEWED[b], minlength=7)[5:]) >= 2 for b in batches_of(natural, 16)]
    assert sum(with_rare_pairs) <= 1


def test_minority_pairs_follow_the_triplet_epochs_and_are_reproducible():
    """``every`` 3 pairs epochs 2, 5, … (the ``triplet_every`` rule); the other epochs are a plain shuffle of the
    same length. The same seed and epoch give the same order; another epoch another one."""
    sampler = MinorityPairSampler(SKEWED, batch_size=16, per_class=2, seed=0, every=3)
    epochs = [np.array(list(sampler)) for _ in range(6)]  # __iter__ steps the epoch like Lightning's set_epoch

    def paired(order):
        return all((np.bincount(SKEWED[b % len(SKEWED)], minlength=7) >= 2).all() for b in batches_of(order, 16))

    assert [paired(e) for e in epochs] == [False, False, True, False, False, True]
    assert all(len(e) == 96 for e in epochs)
    assert all(len(set(epochs[e].tolist())) == 96 for e in (0, 1, 3, 4))  # a natural epoch: each image at most once
    again = MinorityPairSampler(SKEWED, batch_size=16, per_class=2, seed=0, every=3)
    again.set_epoch(5)
    assert np.array_equal(np.array(list(again)), epochs[5])
    assert not np.array_equal(epochs[2] % len(SKEWED), epochs[5] % len(SKEWED))


def test_minority_pairs_per_ddp_rank():
    """Under Lightning's DDP wrapper (shuffle=False: rank r takes r, r + W, …) each rank's batches hold the pairs."""
    from lightning.fabric.utilities.distributed import DistributedSamplerWrapper

    for rank in range(2):
        sampler = MinorityPairSampler(SKEWED, batch_size=14, per_class=2, world_size=2, seed=1)
        wrapped = list(DistributedSamplerWrapper(sampler, num_replicas=2, rank=rank, shuffle=False))
        for batch in batches_of(wrapped, 14):
            assert (np.bincount(SKEWED[batch], minlength=7) == 2).all()


def test_minority_pair_sampler_refuses_what_cannot_give_pairs():
    with pytest.raises(ValueError, match="do not fit"):
        MinorityPairSampler(SKEWED, batch_size=12, per_class=2)  # 7 × 2 > 12
    with pytest.raises(ValueError, match="fewer than 3"):
        MinorityPairSampler(SKEWED, batch_size=32, per_class=3)  # VASC has 2 images


# --- the triplet module on hand examples -------------------------------------------------------------------------
class Passthrough(nn.Module):
    """A 'backbone' whose features are its (B, 2) input."""

    num_features = 2

    def forward(self, x):
        return x


def hand_module(**kwargs):
    """TripletClassifier whose f(x) is the 2-d input itself and whose logits are 0 (CE = ln 7 per image)."""
    from lightning_modules.triplet import TripletClassifier

    module = TripletClassifier(backbone="test_resnet", num_classes=7, class_names=NAMES, margin=0.2, **kwargs)
    net = EmbeddingClassifier(Passthrough(), 7, embed_dim=2)
    with torch.no_grad():
        net.embedding.weight.copy_(torch.eye(2))
        net.embedding.bias.zero_()
        net.classifier.weight.zero_()
        net.classifier.bias.zero_()
    module.net = net
    return module


# a = (3, 4), p = (1, 0) (both MEL), n = (0, 2) (NV); the miner makes the triplets (a, p, n) and (p, a, n).
BATCH = {"image": torch.tensor([[3.0, 4.0], [1.0, 0.0], [0.0, 2.0]]), "label": torch.tensor([MEL, MEL, NV])}
# Unit length: a → (0.6, 0.8), p → (1, 0), n → (0, 1). (a, p, n): 0.8 + 0.2 − 0.4 = 0.6; (p, a, n): 0.8 + 0.2 − 2
# < 0 → 0. Mean over the 2 triplets: 0.3.
NORMALISED = 0.3
# Raw: (a, p, n): 20 + 0.2 − 13 = 7.2; (p, a, n): 20 + 0.2 − 5 = 15.2. Mean 11.2.
RAW = 11.2


@pytest.mark.parametrize("normalize, expected", [(True, NORMALISED), (False, RAW)])
def test_triplet_loss_on_unit_length_or_raw_embeddings_by_hand(normalize, expected):
    """Eq. 4 with α = 0.2 on the hand triplets: L2-normalised (default) 0.3, raw 11.2 — where 0.2 is 2 % of it."""
    module = hand_module(normalize_embeddings=normalize)
    loss, parts = module.training_loss(BATCH, triplet_epoch=True)
    assert parts["triplets"].item() == 2
    assert loss.item() == pytest.approx(expected, abs=1e-5)


def test_alternate_and_joint_readings_of_alongside_by_hand():
    """``alternate`` (default): a triplet epoch trains the triplet loss alone (0.3), a CE epoch CE alone (ln 7);
    ``joint`` with λ = 0.5: CE + λ·triplet = ln 7 + 0.15 on every epoch; ``triplet_every: 0``: CE only."""
    alternate = hand_module()
    assert alternate.hparams.triplet_mode == "alternate"
    assert alternate.training_loss(BATCH, triplet_epoch=True)[0].item() == pytest.approx(NORMALISED, abs=1e-5)
    assert alternate.training_loss(BATCH, triplet_epoch=False)[0].item() == pytest.approx(math.log(7), abs=1e-5)
    joint = hand_module(triplet_mode="joint", triplet_weight=0.5)
    loss, parts = joint.training_loss(BATCH, triplet_epoch=True)
    assert loss.item() == pytest.approx(math.log(7) + 0.5 * NORMALISED, abs=1e-5)
    assert parts["ce_loss"].item() == pytest.approx(math.log(7), abs=1e-5)
    # which epochs carry the triplet term: alternate every 10th, joint all, CE-only none
    epochs = range(20)
    assert [e for e in epochs if (e + 1) % alternate.triplet_period() == 0] == [9, 19]
    assert joint.triplet_period() == 1 and hand_module(triplet_every=0, triplet_mode="joint").triplet_period() == 0
    with pytest.raises(ValueError, match="triplet_mode"):
        hand_module(triplet_mode="sometimes")


@pytest.mark.parametrize("normalize", [True, False])
def test_nearest_class_mean_works_in_the_same_space_as_the_triplet_loss(normalize):
    """References and queries both go through ``metric_space``. Class 0's references are (10, 0), class 1's
    (0, 1); the query (1, 0.2): raw, its distances are 9.0 vs 1.28 → class 1; unit length, (0.98, 0.20) is 0.20
    from (1, 0) and 1.27 from (0, 1) → class 0."""
    module = hand_module(normalize_embeddings=normalize, reference_per_class=2)
    table = type("Table", (), {"labels": np.array([0, 0, 1, 1, 2, 3, 4, 5, 6])})()
    images = [[10.0, 0.0], [10.0, 0.0], [0.0, 1.0], [0.0, 1.0]] + [[5.0, 5.0]] * 5
    data = type("Data", (), {"batch_size": 4, "loader_workers": lambda self: 0, "table": lambda self, split: table,
                             "dataset": lambda self, split, augment, views: [{"image": torch.tensor(x)}
                                                                             for x in images]})()
    module.trainer = type("Trainer", (), {"datamodule": data})()
    module.references = module.reference_embeddings()
    norms = module.references.norm(dim=2)
    assert torch.allclose(norms, torch.ones_like(norms)) if normalize else norms[0, 0].item() == pytest.approx(10)
    predicted = module.predict_step({"image_id": ["q"], "image": torch.tensor([[1.0, 0.2]])}, 0)["ncm"]
    assert predicted.argmax(1).item() == (0 if normalize else 1)


# --- the datamodule follows the module's triplet epochs ----------------------------------------------------------
@pytest.mark.parametrize("mode, every, expected", [("alternate", 10, 10), ("joint", 10, 1), ("alternate", 0, 0)])
def test_the_module_tells_the_datamodule_which_epochs_to_pair(synthetic, mode, every, expected):
    """TripletClassifier.setup sets ``pair_every`` to its triplet epochs: alternate every 10th, joint all, CE-only
    none — then the loader keeps the plain shuffle, so the CE baseline's batches are today's natural ones."""
    from datamodules.isic2018 import ISIC2018Task3DataModule
    from lightning_modules.triplet import TripletClassifier

    data = ISIC2018Task3DataModule(synthetic("isic2018_task3"), minority_pairs=2, batch_size=14, num_workers=0)
    module = TripletClassifier(backbone="test_resnet", num_classes=7, class_names=NAMES, triplet_mode=mode,
                               triplet_every=every)
    module.trainer = type("Trainer", (), {"datamodule": data})()
    module.setup("fit")
    assert data.pair_every == expected
    sampler = data.train_dataloader().sampler
    assert type(sampler) is (SeededRandomSampler if expected == 0 else MinorityPairSampler)
    if expected:
        assert sampler.every == expected and sampler.per_class == 2
    with pytest.raises(ValueError, match="minority_pairs"):
        ISIC2018Task3DataModule(synthetic("isic2018_task3"), minority_pairs=2, sampling="balanced")


# --- checkpoint by the nearest-class-mean balanced accuracy; evaluation on the released validation set -----------
def parsed(*extra: str):
    from dermlab.commands.trainer import config_parser

    return config_parser().parse(["-c", str(REPO / "experiments/isic2018/triplet.yaml"), *extra])


def test_the_config_picks_the_checkpoint_by_ncm_balanced_accuracy_and_tests_the_validation_set():
    config = parsed()
    checkpoints = [c for c in config.trainer.callbacks if c.class_path.endswith("ModelCheckpoint")]
    assert [c.init_args.monitor for c in checkpoints] == ["val/ncm_balanced_accuracy"]
    assert checkpoints[0].init_args.mode == "max"
    model, data = config.model.init_args, config.data.init_args
    assert model.monitor == "val/ncm_balanced_accuracy"
    assert (model.normalize_embeddings, model.triplet_mode, model.margin) == (True, "alternate", 0.2)
    assert (data.split, data.test_set, data.minority_pairs) == ("holdout", "validation", 8)


def test_every_table3_cell_evaluates_on_the_released_validation_set(monkeypatch):
    """Real-data and synthetic form of every Table 3 cell: tested on the released validation set, checkpoint by
    the nearest-class-mean rule; the three rows are CE only, alternate (the paper) and joint."""
    from dermlab.grid import runner, spec

    monkeypatch.chdir(REPO)
    grid = spec.load("experiments/isic2018/tables/table3_triplet.yaml")
    assert all(m.startswith("test/") for m in grid.metrics)
    modes = set()
    for cell in grid.cells():
        for synthetic in (False, True):
            config = parsed(*runner.cell_args(grid, cell, REPO / "runs" / "x", "data/x", [], stand_in=synthetic)[2:])
            assert config.data.init_args.test_set == "validation" and config.data.init_args.split == "holdout"
            assert config.trainer.callbacks[0].init_args.monitor == "val/ncm_balanced_accuracy"
            modes.add((config.model.init_args.triplet_every > 0, config.model.init_args.triplet_mode))
    assert modes == {(False, "alternate"), (True, "alternate"), (True, "joint")}


def test_validation_as_test_set_needs_a_training_holdout(synthetic):
    """``test_set: validation``: test = the released validation CSV's images, validation = held-out training
    images (whole lesions), training = the rest; without ``split: holdout`` it is refused."""
    from datamodules.isic2018 import ISIC2018Task3DataModule

    root = synthetic("isic2018_task3")
    data = ISIC2018Task3DataModule(root, split="holdout", val_size=5, test_set="validation", audit_pixels=False)
    released = pd.read_csv(root / "ISIC2018_Task3_Validation_GroundTruth.csv").image.tolist()
    training = pd.read_csv(root / "ISIC2018_Task3_Training_GroundTruth.csv").image.tolist()
    assert data.table("test").ids == released
    assert set(data.table("val").ids) <= set(training) and len(data.table("val")) <= 5
    assert sorted(data.table("val").ids + data.table("train").ids) == sorted(training)
    with pytest.raises(ValueError, match="split: holdout"):
        ISIC2018Task3DataModule(root, split="official", test_set="validation")


@pytest.mark.real_data
def test_the_real_released_validation_set_is_193_images(tmp_path):
    """On the real ISIC 2018 task 3 validation ground truth (../shared/data/isic2018) the evaluated set is its 193
    images."""
    csv = SHARED_DATA / "isic2018" / "ISIC2018_Task3_Validation_GroundTruth.csv"
    if not csv.is_file():
        pytest.skip(f"{csv.name} is not in ../shared/data/isic2018 (it holds only the task 3 test ground truth and "
                    "the lesion groupings), so the 193-image check cannot run on real files here")
    from datamodules.isic2018 import ISIC2018Task3DataModule

    shutil.copy(csv, tmp_path / csv.name)
    ids = pd.read_csv(csv).image.tolist()
    touch_images(tmp_path / "ISIC2018_Task3_Validation_Input", ids)
    data = ISIC2018Task3DataModule(tmp_path, split="holdout", test_set="validation")
    assert data.raw_table("test").ids == ids and len(ids) == 193


def test_a_short_run_logs_and_monitors_the_ncm_balanced_accuracy(synthetic, tmp_path):
    """One epoch of the Table 3 config on the tiny synthetic set (test_resnet, a triplet epoch with pair
    batches): val/ncm_balanced_accuracy is logged and is the score the best checkpoint was chosen by."""
    from dermlab.commands.trainer import build_cli

    root = synthetic("isic2018_task3")
    args = ["-c", str(REPO / "experiments/isic2018/triplet.yaml"), "--data.init_args.root", str(root),
            "--data.init_args.train_transforms", "none", "--data.init_args.eval_transforms", "none",
            "--data.init_args.image_size", "32", "--data.init_args.val_size", "4",
            "--data.init_args.minority_pairs", "2", "--data.init_args.batch_size", "14",
            "--data.init_args.num_workers", "0", "--data.init_args.audit_pixels", "false",
            "--model.init_args.backbone", "test_resnet", "--model.init_args.triplet_every", "1",
            "--model.init_args.reference_per_class", "3", "--trainer.max_epochs", "1",
            "--trainer.accelerator", "cpu",
            "--trainer.num_sanity_val_steps", "0", "--trainer.default_root_dir", str(tmp_path),
            "--run.wandb", "disabled"]
    cli = build_cli(["fit", *args])
    metrics = cli.trainer.callback_metrics
    assert "val/ncm_balanced_accuracy" in metrics and metrics["train/triplets"] > 0
    assert type(cli.trainer.train_dataloader.sampler) is MinorityPairSampler
    checkpoint = cli.trainer.checkpoint_callback
    assert checkpoint.monitor == "val/ncm_balanced_accuracy"
    assert checkpoint.best_model_score.item() == pytest.approx(metrics["val/ncm_balanced_accuracy"].item())
