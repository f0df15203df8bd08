"""The patient-metadata branch end to end: switched on by ``-c experiments/base/metadata.yaml`` on every classifier
method's config, refused where a data set lacks a field, kept by the checkpoint, and learning a label that only the
metadata carries.

Bars (2-core CPU machine): on an ISIC 2020 twin whose label is the patient's sex (images drawn for the original,
unrelated labels; 282 images after duplicates, 24 px, test_resnet, 4 epochs, patient-grouped test fold), the
metadata model reached test AUC 1.0 and the image-only model 0.447 (chance 0.5). The bars: metadata model balanced
accuracy ≥ 0.9 and AUC ≥ 0.95; image-only AUC within 0.5 ± 0.2 (about 56 test images: chance AUC varies by ~0.08).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from datamodules import HAM10000DataModule, ISIC2016DataModule, ISIC2017DataModule
from datamodules.metadata import MetadataEncoding
from datamodules.synthetic import write_synthetic
from dermlab.errors import DataError
from tests.conftest import REPO, tiny_args
from tests.helpers.dds import TAP

METADATA = ["-c", str(REPO / "experiments" / "base" / "metadata.yaml")]
AGE_SEX = ["--data.init_args.metadata_fields", "[age, sex]"]  # ISIC 2017 ships no anatomic site
STEPS = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
         "--trainer.num_sanity_val_steps", "0", "--trainer.accelerator", "cpu"]


def fit_and_test(arguments: list[str], run: Path) -> Path:
    """``dermlab fit`` then ``dermlab test`` of ``last.ckpt``; returns the checkpoint."""
    from dermlab.cli import main

    main(["fit", *arguments])
    checkpoint = run / "checkpoints" / "last.ckpt"
    main(["test", *arguments, "--ckpt_path", str(checkpoint)])
    return checkpoint


def test_a_field_the_data_set_lacks_is_refused_at_setup_naming_field_and_data_set(synthetic):
    data = ISIC2017DataModule(str(synthetic("isic2017")), metadata_fields=["age", "sex", "localization"],
                              num_workers=0)
    with pytest.raises(DataError, match=r"metadata field 'localization' is not in data set isic2017 .*its files "
                                        r"give sex, age"):
        data.setup("fit")


def test_a_test_on_set_without_the_fields_is_refused_at_fit_before_training(synthetic):
    """DDI ships no age: a HAM10000 run with metadata and DDI as test_on stops at fit's set-up, not after training."""
    from datamodules import DDIDataModule, HAM10000DataModule

    data = HAM10000DataModule(str(synthetic("ham10000")), split="kfold", n_folds=3, metadata_fields=["age", "sex"],
                              num_workers=0, test_on=DDIDataModule(str(synthetic("ddi"))))
    with pytest.raises(DataError, match=r"metadata field 'age' is not in data set ddi"):
        data.setup("fit")


def test_a_data_set_without_patient_metadata_says_to_train_on_images_only(synthetic):
    data = ISIC2016DataModule(str(synthetic("isic2016")), metadata_fields=["age"], num_workers=0, val_size=4)
    with pytest.raises(DataError, match=r"isic2016 .* ships no patient metadata: train it on images only \(leave "
                                        r"out -c experiments/base/metadata.yaml"):
        data.setup("fit")


def test_unseen_categories_and_abbreviations_at_setup(copy_of):
    """A validation image's site the training split never had is encoded as missing and recorded at set-up (for
    ``splits/metadata.json``); a spreadsheet's ``M`` is ``male``; the split CSV leaves missing values empty."""
    root = copy_of("ham10000")
    data = HAM10000DataModule(str(root), metadata_fields=["sex", "localization"], num_workers=0, image_size=32)
    val_id = data.table("val").ids[0]
    path = root / "HAM10000_metadata.csv"
    table = pd.read_csv(path)
    table.loc[table.image_id == val_id, ["sex", "localization"]] = ["M", "scalp"]
    table.loc[table.image_id == data.table("val").ids[1], "sex"] = "unknown"
    table.to_csv(path, index=False)
    data = HAM10000DataModule(str(root), metadata_fields=["sex", "localization"], num_workers=0, image_size=32)
    data.setup("fit")
    assert data.unseen_metadata == {"val": {"localization": {"scalp": 1}}}
    encoding = data.metadata_encoding
    vector = data.dataset("val")[0]["metadata"].numpy()
    assert vector[encoding.columns.index("sex=male")] == 1
    assert vector[encoding.columns.index("localization=missing")] == 1
    assert data.metadata_columns("val")["meta_sex"][:2] == ["M", ""]


def test_items_carry_the_training_split_encoding(synthetic):
    data = HAM10000DataModule(str(synthetic("ham10000")), metadata_fields=["age", "sex", "localization"], num_workers=0,
                              image_size=32)
    data.setup("fit")
    encoding = data.metadata_encoding
    train = data.patient_metadata("train")
    assert encoding.age_mean == pytest.approx(train["age"].mean())  # fitted on the training split only
    assert set(encoding.categories["localization"]) == set(train["localization"]) - {"unknown"}
    item = data.dataset("val")[0]
    expected, _ = encoding.encode(data.split_patient_metadata("val").iloc[:1])
    assert item["metadata"].dtype == torch.float32 and item["metadata"].shape == (encoding.width,)
    np.testing.assert_array_equal(item["metadata"].numpy(), expected[0])


def test_checkpoint_keeps_the_encoder_and_the_data_follows_it(synthetic, tmp_path, capsys):
    """A metadata run's checkpoint rebuilds its branch (``load_from_checkpoint``), and testing it without
    metadata.yaml takes the checkpoint's fields; naming other fields is refused."""
    from dermlab.cli import main
    from lightning_modules import LesionClassifier

    root, run = synthetic("isic2017"), tmp_path / "run"
    arguments = tiny_args(root, run, *STEPS, *METADATA, *AGE_SEX)
    checkpoint = fit_and_test(arguments, run)
    tested = pd.read_csv(run / "predictions_test.csv")
    model = LesionClassifier.load_from_checkpoint(checkpoint, map_location="cpu")
    assert model.metadata_encoding is not None and list(model.metadata_encoding.fields) == ["age", "sex"]
    assert "net.metadata_branch.mlp.0.0.weight" in torch.load(checkpoint, weights_only=False)["state_dict"]
    record = json.loads((run / "splits" / "metadata.json").read_text())
    assert record["encoding"] == model.hparams.metadata_encoding
    assert {"meta_age", "meta_sex"} <= set(pd.read_csv(run / "splits" / "test.csv").columns)

    again = tmp_path / "again"  # the plain config: the data follows the checkpoint's fields
    main(["test", *tiny_args(root, again), "--ckpt_path", str(checkpoint)])
    retested = pd.read_csv(again / "predictions_test.csv")
    np.testing.assert_allclose(retested.filter(like="prob").to_numpy(), tested.filter(like="prob").to_numpy(),
                               atol=1e-6)
    with pytest.raises(SystemExit):
        main(["test", *tiny_args(root, tmp_path / "other"), "--data.init_args.metadata_fields", "[age]",
              "--ckpt_path", str(checkpoint)])
    assert "trained with metadata fields ['age', 'sex'], but data.init_args.metadata_fields is ['age']" in (
        capsys.readouterr().err)


def test_a_checkpoint_of_other_metadata_is_refused_before_its_weights_load():
    """An image-only checkpoint given metadata, a metadata one given none, and a resumed run whose training split's
    metadata changed are refused by name (not with a state-dict error, nor silently with shifted columns)."""
    from lightning_modules import LesionClassifier

    frame = pd.DataFrame({"sex": ["male", "female"]}, index=["a", "b"])
    encoding = MetadataEncoding.fit(frame, ["sex"], "tiny")
    other = MetadataEncoding.fit(pd.DataFrame({"sex": ["male", "other"]}, index=["a", "b"]), ["sex"], "tiny")
    image_only = LesionClassifier(backbone="test_resnet")
    with_metadata = LesionClassifier(backbone="test_resnet", metadata_encoding=encoding.to_json())
    with pytest.raises(DataError, match="trained on images only, but the data gives patient metadata"):
        with_metadata.on_load_checkpoint({"hyper_parameters": {"metadata_encoding": None}, "state_dict": {}})
    with pytest.raises(DataError, match=r"trained with patient metadata \(sex\) but this model has no metadata"):
        image_only.on_load_checkpoint({"hyper_parameters": {"metadata_encoding": encoding.to_json()},
                                       "state_dict": {}})
    with pytest.raises(DataError, match="the training split's metadata changed since the checkpoint was written"):
        with_metadata.on_load_checkpoint({"hyper_parameters": {"metadata_encoding": other.to_json()},
                                          "state_dict": {}})
    with_metadata.on_load_checkpoint({"hyper_parameters": {"metadata_encoding": encoding.to_json()}, "state_dict": {}})


@pytest.mark.slow
@pytest.mark.parametrize("method", ["dds", "arl", "patch", "weighting_flat", "weighting_hierarchical"])
def test_the_branch_composes_with_each_methods_config(method, synthetic, tmp_path):
    configs = {"dds": ["dds/base.yaml"], "arl": ["arl/base.yaml"],
               "patch": ["patch/base.yaml"], "weighting_flat": ["weighting/base.yaml"],
               "weighting_hierarchical": ["weighting/base.yaml", "weighting/hierarchical.yaml"]}[method]
    extra = {"dds": ["--model.init_args.aux_layers", f"[{TAP}]"],
             "arl": ["--data.init_args.train_repeats", "1", "--data.init_args.eval_views", "2", *AGE_SEX],
             "patch": ["--model.init_args.n_crops", "4", "--data.init_args.train_crops", "4",
                       "--data.init_args.eval_crops", "4", "--data.init_args.crop_size", "16"],
             "weighting_flat": [], "weighting_hierarchical": ["--model.init_args.lstm_hidden", "16"]}[method]
    root = synthetic("isic2017" if method == "arl" else "ham10000")
    run = tmp_path / "run"
    data = ["--data", str(REPO / "experiments" / "base" / "data" / "ham10000.yaml")] if method == "dds" else []
    arguments = [*(w for c in configs for w in ("-c", str(REPO / "experiments" / c))), *data, *METADATA,
                 "--data.init_args.root", str(root), "--data.init_args.image_size", "32",
                 "--data.init_args.batch_size", "8", "--data.init_args.num_workers", "0",
                 "--model.init_args.backbone", "test_resnet", "--model.init_args.pretrained_weights", "null",
                 "--trainer.default_root_dir", str(run), "--run.wandb", "disabled", *STEPS, *extra]
    checkpoint = fit_and_test(arguments, run)
    state = torch.load(checkpoint, weights_only=False)
    assert state["hyper_parameters"]["metadata_encoding"]["fields"] == (
        ["age", "sex"] if method == "arl" else ["age", "sex", "localization"])
    assert any(k.startswith("net.metadata_branch.") for k in state["state_dict"])
    tested = pd.read_csv(run / "predictions_test.csv")
    assert len(tested) == len(pd.read_csv(run / "splits" / "test.csv")) > 0


def relabel_by_sex(root: Path) -> None:
    """Make the ISIC 2020 twin's label the patient's sex (melanoma = male): only the metadata carries it."""
    path = root / "ISIC_2020_Training_GroundTruth.csv"
    truth = pd.read_csv(path)
    truth["target"] = (truth.sex == "male").astype(int)
    truth["benign_malignant"] = truth.target.map({0: "benign", 1: "malignant"})
    truth.to_csv(path, index=False)


@pytest.mark.slow
def test_the_metadata_model_learns_a_label_only_the_metadata_carries(tmp_path):
    from dermlab.commands.trainer import build_cli

    root = tmp_path / "isic2020"
    write_synthetic("isic2020", root, n=300, size=24, seed=0)
    relabel_by_sex(root)
    results = {}
    for name, extra in (("image", []), ("metadata", METADATA)):
        cli = build_cli(["fit", "-c", str(REPO / "experiments" / "demo_synthetic.yaml"), *extra,
                         "--data", "datamodules.ISIC2020DataModule", "--data.init_args.root", str(root),
                         "--data.init_args.image_size", "24", "--data.init_args.num_workers", "0",
                         "--model.init_args.backbone", "test_resnet", "--trainer.max_epochs", "4",
                         "--model.init_args.scheduler.init_args.T_max", "4",
                         "--model.init_args.optimizer.init_args.lr", "0.003",
                         "--trainer.default_root_dir", str(tmp_path / name), "--run.wandb", "disabled"])
        results[name] = cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path="last", verbose=False)[0]
    metadata, image = results["metadata"], results["image"]
    assert (metadata["test/sensitivity"] + metadata["test/specificity"]) / 2 >= 0.9
    assert metadata["test/auc"] >= 0.95
    assert abs(image["test/auc"] - 0.5) <= 0.2
