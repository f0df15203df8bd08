"""isic2018 paper (002) tasks 1–2 against the code, issue #17 (tables 1–2; task 3 lives in another file).

§1: "we first fix the weights of the pre-trained VGG net for 50 epochs", "a linear learning rate schedule",
"randomly rotate the image with 90, 180, 270 degrees", "remove the isolated small regions", Table 1 (the
challenge's thresholded Jaccard of full-size masks); §2: task 2 "based on task 1 result", Table 2.
"""

from __future__ import annotations

from types import SimpleNamespace

import albumentations as A
import lightning.pytorch as L
import numpy as np
import pytest
import torch
from PIL import Image

from callbacks.segmentation import FreezeEncoder, MaskWriter
from datamodules.quarter_turns import RandomQuarterTurn
from dermlab.postprocess import PostProcess, clean_mask
from dermlab.scoring import score_segmentation
from lightning_modules.schedules import LinearOverRun, fit_to_run
from lightning_modules.segmentation import LesionSegmenter, SegAN
from tests.conftest import REPO

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
                        callbacks=[writer])
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

    from dermlab.scoring import full_size_metric_names

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
                                    synthetic=synthetic)
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

    import dermlab.cli
    from dermlab.grid import runner

    class FakeTrainer:
        def __init__(self):
            self.checkpoint_callback = SimpleNamespace(best_model_path="", best_model_score=None)
            self.callbacks = [SimpleNamespace(scores={}), SimpleNamespace()]

        def test(self, *args, **kwargs):
            return [{"test/threshold_jaccard": 0.9}]

        def predict(self, *args, **kwargs):
            self.callbacks[0].scores = {"full/threshold_jaccard": 0.7}

    def build_cli(args, run=True):
        return SimpleNamespace(trainer=FakeTrainer(), model=None, datamodule=SimpleNamespace(split_audit=None))

    monkeypatch.setattr(dermlab.cli, "build_cli", build_cli)
    runner.run_cell_command([str(tmp_path / "a.json"), "--predict", "--"])
    runner.run_cell_command([str(tmp_path / "b.json"), "--"])
    assert json.loads((tmp_path / "a.json").read_text())["metrics"] == {"test/threshold_jaccard": 0.9,
                                                                        "full/threshold_jaccard": 0.7}
    assert json.loads((tmp_path / "b.json").read_text())["metrics"] == {"test/threshold_jaccard": 0.9}
