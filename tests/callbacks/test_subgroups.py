"""``callbacks/subgroups.py``: subgroup metrics of a test run, alone and among the CLI's default callbacks."""

from __future__ import annotations

import pandas as pd
import pytest


# --- the callback ---------------------------------------------------------------------------------------------------
@pytest.mark.slow  # a Lightning test run: ~3 s
def test_callback_on_a_tiny_synthetic_ham10000_test_run(synthetic, tmp_path):
    import lightning.pytorch as L

    from callbacks import SubgroupMetrics
    from datamodules import HAM10000DataModule
    from lightning_modules import LesionClassifier

    data = HAM10000DataModule(str(synthetic("ham10000")), split="patch", image_size=32, batch_size=4, num_workers=0)
    model = LesionClassifier("test_resnet", num_classes=7, class_names=data.class_names)
    callback = SubgroupMetrics(positive="MEL", n_boot=50)
    trainer = L.Trainer(accelerator="cpu", default_root_dir=tmp_path, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[callback])
    trainer.test(model, datamodule=data)
    test_ids = data.table("test").ids
    table = pd.read_csv(tmp_path / "subgroups_test.csv", keep_default_na=False, na_values=[""])
    assert list(table.attribute.unique()) == ["all", "age_band", "sex", "localization", "ita_category"]
    assert table.n[0] == len(test_ids)
    for _, rows in table[table.attribute != "all"].groupby("attribute"):
        assert rows.n.sum() == len(test_ids)  # every image in exactly one group of each attribute
    melanomas = int((data.table("test").labels == 0).sum())  # MEL is class 0
    assert table.positives[0] == melanomas
    tones = pd.read_csv(tmp_path / "ita_test.csv")
    assert tones.image.tolist() == test_ids and (tones.lesion == "otsu+ellipse").all()
    assert (tmp_path / "plots" / "test_subgroups.png").stat().st_size > 1000
    # HAM10000 has no skin-type labels: no skin-type file and no skin_type/ scores for a grid cell's result.json
    assert not (tmp_path / "skin_type_test.csv").exists() and callback.test_scores == {}


@pytest.mark.slow  # the CLI with the default callbacks: ~5 s
def test_default_callbacks_write_subgroups_with_the_logged_test_auc(isic2017_root, tmp_path):
    from dermlab.commands.trainer import build_cli
    from tests.conftest import tiny_args

    run = tmp_path / "run"
    cli = build_cli(["test", *tiny_args(isic2017_root, run)])
    table = pd.read_csv(run / "subgroups_test.csv", keep_default_na=False, na_values=[""])
    # the run's predictions_test.csv, read by the callback, gives the AUC torchmetrics logged (binary: P(melanoma))
    assert table.auc[0] == pytest.approx(float(cli.trainer.callback_metrics["test/auc"]), abs=1e-4)
    assert list(table.attribute.unique()) == ["all", "sex", "age_band", "ita_category"]
    assert (table.groupby("attribute").n.sum() == 12).all()  # 12 test images in each attribute's groups
