"""Training on one data set and testing on another, end to end: a fit on HAM10000 tested on ISIC 2017 classes, and
the cross-dataset grid."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import REPO
from tests.helpers.cross_dataset import EXPERIMENTS

# --- a fit and the grid -----------------------------------------------------------------------------------------
CHECKPOINT_ONLY = ["--trainer.callbacks", "[{class_path: callbacks.ModelCheckpoint, init_args: {monitor: val/auc, "
                                       "mode: max}}]"]


def fit_ham10000_test_isic2017(synthetic, run: Path, *extra: str) -> dict:
    """A tiny fit on the synthetic HAM10000 twin, tested (best checkpoint) on the synthetic ISIC 2017 test set as
    three classes; checks that the test metrics are those of the merged probabilities in predictions_test.csv."""
    from dermlab.commands.trainer import build_cli
    from dermlab.files.predictions import read_predictions

    cli = build_cli(["fit", "-c", str(EXPERIMENTS / "demo_synthetic.yaml"), "--data",
                     str(EXPERIMENTS / "base" / "data" / "ham10000.yaml"),
                     "-c", str(EXPERIMENTS / "cross_dataset" / "isic2017_test.yaml"),
                     "--data.init_args.root", str(synthetic("ham10000")),
                     "--data.init_args.test_on.init_args.root", str(synthetic("isic2017")),
                     "--data.init_args.image_size", "32", "--data.init_args.batch_size", "8",
                     "--data.init_args.num_workers", "0", "--model.init_args.backbone", "test_resnet",
                     "--trainer.max_epochs", "1", "--model.init_args.scheduler.init_args.T_max", "1",
                     "--trainer.default_root_dir", str(run), "--run.wandb", "disabled", *extra])
    tested = cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path="best", verbose=False)[0]
    classes = ("nevus", "melanoma", "seborrheic_keratosis")
    frame = read_predictions(run / "predictions_test.csv", classes)  # checks the columns and targets
    official = pd.read_csv(synthetic("isic2017") / "ISIC-2017_Test_v2_Part3_GroundTruth.csv")
    assert sorted(frame.image) == sorted(official.image_id)
    assert np.allclose(frame[list(classes)].sum(axis=1), 1.0, atol=1e-5)  # merged and renormalised
    truth, called = frame.target.to_numpy(), frame[list(classes)].to_numpy().argmax(1)
    assert set(truth) == {0, 1, 2}
    recalls = [np.mean(called[truth == k] == k) for k in range(3)]
    assert tested["test/balanced_accuracy"] == pytest.approx(np.mean(recalls), abs=1e-6)
    assert "test/recall_seborrheic_keratosis" in tested and "test/recall_BCC" not in tested
    audit = json.loads((run / "splits" / "audit.json").read_text())
    assert audit["cross_test"]["mapping"]["name"] == "isic2018 → isic2017_three_class" and not audit["leak"]
    assert pd.read_csv(run / "splits" / "test.csv").image_id.tolist() == official.image_id.tolist()
    return tested


def test_train_on_ham10000_and_test_on_isic2017_three_classes(synthetic, tmp_path):
    fit_ham10000_test_isic2017(synthetic, tmp_path / "run", *CHECKPOINT_ONLY)


@pytest.mark.slow
def test_the_default_callbacks_plot_and_score_subgroups_on_the_evaluation_classes(synthetic, tmp_path):
    """The same fit with the default callbacks (~20 s on 2 cores): plots, CAM grid and subgroup metrics of the
    test split are on the three ISIC 2017 classes."""
    run = tmp_path / "run"
    fit_ham10000_test_isic2017(synthetic, run)
    assert (run / "plots" / "test_confusion.png").is_file() and (run / "plots" / "test_cams.png").is_file()
    subgroups = pd.read_csv(run / "subgroups_test.csv")
    # the target's metadata (ISIC-2017_Test_v2_Data_metadata.csv): the HAM10000 metadata knows none of these images
    assert {"male", "female"} <= set(subgroups[subgroups.attribute == "sex"].group)


@pytest.mark.slow
def test_the_cross_dataset_grid_renders_on_the_synthetic_default(tmp_path):
    """`dermlab grid run` of experiments/cross_dataset/tables/patch_ham10000.yaml on its synthetic default (HAM10000
    → its own test part, ISIC 2018 task 3 test, ISIC 2017 test, ISIC 2019's test fold), in a scratch folder
    holding a link to experiments/."""
    (tmp_path / "experiments").symlink_to(EXPERIMENTS)
    command = [sys.executable, "-m", "dermlab", "grid", "run", "experiments/cross_dataset/tables/patch_ham10000.yaml",
               "--runs", str(tmp_path / "runs")]
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": str(REPO)}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (tmp_path / "data" / "synthetic" / "isic2018_task3_n200_96px").is_dir()
    root = tmp_path / "runs" / "grids" / "cross_dataset" / "patch_ham10000"
    text = (root / "report.md").read_text()
    for row in ("HAM10000 test part", "ISIC 2018 task 3 test", "ISIC 2017 test (3 classes)", "ISIC 2019 test fold"):
        assert f"| {row} |" in text and "missing" not in text.split(f"| {row} |")[1].split("\n")[0]
    assert "isic2018 → isic2017_three_class: nevus, melanoma, seborrheic_keratosis" in text
    results = {p.parent.name: json.loads(p.read_text()) for p in root.glob("*/result.json")}
    assert len(results) == 4 and sum(r["test_on"] is not None for r in results.values()) == 3
    assert "isic2018 → isic2019: MEL, NV, BCC, AKIEC, BKL, DF, VASC" in text  # AK and SCC scored as AKIEC
    sizes = {r["test_on"]["data_module"] if r["test_on"] else "own":
             len(pd.read_csv(root / name / "predictions_test.csv")) for name, r in results.items()}
    assert sizes == {"own": 50, "ISIC2018Task3DataModule": 100, "ISIC2017DataModule": 100, "ISIC2019DataModule": 40}
