"""The external test sets (DDI, Fitzpatrick17k, PAD-UFES-20) across data sets: the split audit finds an external
image planted among the training images, and a test run on an external set writes the skin-type outputs (slow)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from datamodules import DDIDataModule, HAM10000DataModule, PADUFES20DataModule
from datamodules.datasets import HAM10000Reader


@pytest.mark.parametrize("external", ["ddi", "pad_ufes20"])
def test_the_audit_finds_an_external_image_planted_in_the_training_images(external, synthetic, tmp_path):
    """A user's HAM10000 folder holding a copy of an external test image under a HAM name: the pixels match, the
    training copy is left out (test_on_overlap: drop) and the audit records it."""
    user_ham = tmp_path / "ham10000"
    shutil.copytree(synthetic("ham10000"), user_ham)
    target = {"ddi": DDIDataModule, "pad_ufes20": PADUFES20DataModule}[external]
    probe = target(str(synthetic(external)), split="external")
    planted_from = probe.table("test").paths[3]
    victim = HAM10000Reader(user_ham, split="kfold", n_folds=3).table("train")
    victim_id, victim_path = victim.ids[0], victim.paths[0]
    shutil.copyfile(planted_from, victim_path)  # the external PNG's bytes under a HAM training image's name

    ham = HAM10000DataModule(str(user_ham), split="kfold", n_folds=3, image_size=32, num_workers=0,
                             test_on=target(str(synthetic(external)), split="external"))
    ham.setup("fit")
    record = ham.split_audit.cross_test
    assert record["dropped"]["counts"] == {"train": {"pixels": 1}} and record["dropped"]["examples"] == [victim_id]
    assert victim_id not in ham.table("train").ids
    assert not ham.split_audit.leak  # the copy is gone from training: the audit run again finds nothing


def test_without_a_planted_copy_nothing_is_dropped(synthetic):
    ham = HAM10000DataModule(str(synthetic("ham10000")), split="kfold", n_folds=3, image_size=32, num_workers=0,
                             test_on=DDIDataModule(str(synthetic("ddi"))))
    ham.setup("fit")
    assert ham.split_audit.cross_test["dropped"] == {} and not ham.split_audit.leak


@pytest.mark.slow  # a Lightning test run on the DDI twin: ~10 s
def test_a_test_on_ddi_writes_per_type_metrics_the_gap_and_the_ita_agreement(tmp_path):
    import lightning.pytorch as L

    from callbacks import SubgroupMetrics
    from datamodules.synthetic import write_synthetic
    from lightning_modules import LesionClassifier

    write_synthetic("ham10000", tmp_path / "ham", n=40, size=48, seed=0)
    write_synthetic("ddi", tmp_path / "ddi", n=90, size=96, seed=0)
    data = HAM10000DataModule(str(tmp_path / "ham"), split="kfold", n_folds=3, image_size=32, batch_size=16,
                              num_workers=0, test_on=DDIDataModule(str(tmp_path / "ddi")))
    model = LesionClassifier("test_resnet", num_classes=7, class_names=data.class_names)
    callback = SubgroupMetrics(n_boot=50, n_permutations=100)
    trainer = L.Trainer(accelerator="cpu", default_root_dir=tmp_path / "run", logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[callback])
    trainer.test(model, datamodule=data)
    run = tmp_path / "run"
    truth = pd.read_csv(tmp_path / "ddi" / "ddi_metadata.csv")
    counts = truth.skin_tone.map({12: "I-II", 34: "III-IV", 56: "V-VI"}).value_counts()
    table = pd.read_csv(run / "subgroups_test.csv", keep_default_na=False, na_values=[""])
    groups = table[table.attribute == "fitzpatrick_group"].set_index("group")
    assert groups.n.to_dict() == counts.to_dict()
    gaps = pd.read_csv(run / "skin_type_test.csv").set_index("metric")
    assert list(gaps.index) == ["auc", "sensitivity", "specificity"]
    assert gaps.loc["auc", "gap"] == pytest.approx(groups.loc["I-II", "auc"] - groups.loc["V-VI", "auc"], abs=1e-4)
    assert 0 < gaps.loc["auc", "p_value"] <= 1 and gaps.loc["auc", "n_first"] == counts["I-II"]
    assert callback.test_scores["skin_type/auc_gap"] == pytest.approx(gaps.loc["auc", "gap"], abs=1e-4)
    agreement = json.loads((run / "skin_type_agreement_test.json").read_text())
    assert agreement["images"] == len(truth) and agreement["labels"] == "group"
    # the twin draws each image's skin darker with its group: the proxy must follow (lighter skin, larger angle)
    assert agreement["compared"] >= 0.8 * len(truth) and agreement["spearman_rho"] < -0.5
    assert np.isfinite(agreement["kappa_quadratic"])


def test_dermlab_audit_counts_the_absent_images_of_the_external_set(synthetic, tmp_path, capsys):
    """Five DDI images deleted (an incomplete download): `dermlab audit` reads the splits as listed and says so."""
    from dermlab.cli import main
    from tests.conftest import REPO

    ddi = tmp_path / "ddi"
    shutil.copytree(synthetic("ddi"), ddi)
    gone = sorted(p for p in ddi.rglob("*.png"))[:5]
    for path in gone:
        path.unlink()
    main(["audit", "-c", str(REPO / "experiments" / "patch" / "base.yaml"), "-c",
          str(REPO / "experiments" / "external" / "ddi_test.yaml"), "--data.init_args.root",
          str(synthetic("ham10000")), "--data.init_args.test_on.init_args.root", str(ddi), "--no-pixels"])
    report = json.loads(capsys.readouterr().out)
    assert report["absent_images"] == {"test": 5}
    assert report["examples"]["absent test"] == [p.stem for p in gone]
