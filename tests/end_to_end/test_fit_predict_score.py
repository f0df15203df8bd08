"""``dermlab fit`` → ``predict`` → ``dermlab score`` on the synthetic twins of ISIC 2019, 2020 and 2024."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from dermlab.challenge.scoring import score
from dermlab.challenge.truth import ISIC2019_CATEGORIES
from dermlab.cli import main
from dermlab.commands.trainer import build_cli
from tests.conftest import REPO

# --- dermlab fit and predict on each synthetic twin ----------------------------------------------------------------

@pytest.mark.parametrize("name", ["isic2019", "isic2020"])
def test_fit_and_predict_through_the_cli_on_the_synthetic_twin(name, synthetic, tmp_path):
    from dermlab.cli import main

    root, run = synthetic(name), tmp_path / "run"
    args = ["-c", str(REPO / "experiments" / "demo_synthetic.yaml"),
            "--data", str(REPO / "experiments" / "base" / "data" / f"{name}.yaml"),
            "--data.init_args.root", str(root), "--data.init_args.n_folds", "3", "--data.init_args.image_size", "32",
            "--data.init_args.num_workers", "0", "--data.init_args.batch_size", "4",
            "--model.init_args.backbone", "test_resnet", "--trainer.default_root_dir", str(run),
            "--run.wandb", "disabled"]
    main(["fit", *args, "--trainer.fast_dev_run", "true"])
    audit = json.loads((run / "splits" / "audit.json").read_text())
    assert not audit["leak"] and set(audit["shared_lesions"].values()) == {0}
    assert audit["lesion_ids"] == {"train": True, "val": True, "test": True}
    assert audit["fingerprinted"] == sum(n for n in audit["splits"].values() if n)  # the pixel check ran
    main(["predict", *args])
    test_ids = pd.read_csv(run / "splits" / "test.csv", dtype=str).image_id.tolist()  # written by predict's set-up
    submission = pd.read_csv(run / "submission_test.csv", dtype={0: str})
    truth = pd.read_csv(root / ("ISIC_2019_Training_GroundTruth.csv" if name == "isic2019"
                                else "ISIC_2020_Training_GroundTruth.csv"), dtype=str)
    id_column = truth.columns[0]
    assert sorted(submission[id_column]) == sorted(test_ids)
    if name == "isic2019":
        assert list(submission.columns) == ["image", *ISIC2019_CATEGORIES] and submission.UNK.eq(0.0).all()
        assert np.allclose(submission.iloc[:, 1:9].sum(axis=1), 1.0, atol=1e-4)
    else:
        assert list(submission.columns) == ["image_name", "target"] and submission.target.between(0, 1).all()
    truth[truth[id_column].isin(test_ids)].to_csv(tmp_path / "test_truth.csv", index=False)  # the fold's truth
    result = score(tmp_path / "test_truth.csv", run / "submission_test.csv")
    assert result["layout"] == name and result["images"] == len(test_ids)


def test_fit_predict_and_score_through_the_cli(synthetic, tmp_path):
    root, run = synthetic("isic2024"), tmp_path / "run"
    args = ["-c", str(REPO / "experiments" / "demo_synthetic.yaml"),
            "--data", str(REPO / "experiments" / "base" / "data" / "isic2024.yaml"),
            "--data.init_args.root", str(root), "--data.init_args.n_folds", "3", "--data.init_args.image_size", "32",
            "--data.init_args.batch_size", "8", "--data.init_args.num_workers", "2",
            "--model.init_args.backbone", "test_resnet", "--trainer.default_root_dir", str(run),
            "--run.wandb", "disabled"]
    fitted = build_cli(["fit", *args, "--trainer.max_epochs", "1"])
    steps = math.ceil(len(fitted.datamodule.table("train")) / 8)
    assert fitted.trainer.global_step == steps and (run / "checkpoints" / "last.ckpt").exists()
    assert fitted.model.class_names == ("benign", "malignant")
    audit = json.loads((run / "splits" / "audit.json").read_text())
    assert not audit["leak"] and audit["lesion_ids"] == {"train": True, "val": True, "test": True}
    main(["predict", *args, "--ckpt_path", str(run / "checkpoints" / "last.ckpt")])
    submission = pd.read_csv(run / "submission_test.csv")
    assert list(submission.columns) == ["isic_id", "target"] and submission.target.between(0, 1).all()
    truth = tmp_path / "solution.csv"
    fitted.datamodule.ground_truth("test").to_csv(truth, index=False)
    result = score(truth, run / "submission_test.csv")
    assert result["layout"] == "isic2024" and result["primary"] == "pauc_tpr80"
    assert result["images"] == len(submission) and 0 <= result["per_category"]["target"]["pauc_tpr80"] <= 0.2
