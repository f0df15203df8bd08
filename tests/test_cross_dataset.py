"""Testing across data sets: class mappings by hand, the test_on key, the cross audit on twins, a fit, the grid."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from datamodules import HAM10000DataModule, ISIC2017DataModule, ISIC2018Task3DataModule, VitiligoDataModule
from datamodules.audit import audit_splits, canonical_id
from datamodules.cross import overlap
from datamodules.datasets.table import ImageTable
from datamodules.taxonomies import TAXONOMIES, ClassMapping, known_pairs, mapping_between
from dermlab.errors import DataError
from dermlab.metrics.logged import classification_metrics, metric_input
from tests.conftest import REPO, SHARED_DATA

HAM = TAXONOMIES["isic2018"]
ISIC2019 = TAXONOMIES["isic2019"]
EXPERIMENTS = REPO / "experiments"


def toy(from_source: dict, from_target: dict, classes=("x", "y"), target=("x", "y")) -> ClassMapping:
    return ClassMapping("abc", "xy", ("a", "b", "c"), tuple(target), tuple(classes), from_source, from_target)


P = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7], [0.3, 0.3, 0.4]])  # 3 images × 3 source classes


def test_probabilities_merge_by_summing_and_metrics_are_on_the_target_classes():
    mapping = toy({"a": "x", "b": "x", "c": "y"}, {"x": "x", "y": "y"})
    merged = mapping.merge(P)
    assert torch.allclose(merged, torch.tensor([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]]))
    labels = torch.as_tensor(mapping.target_labels(np.array([0, 1, 1])))  # x, y, y
    metrics = classification_metrics(mapping.classes)
    metrics.update(metric_input(merged), labels)
    values = {k: float(v) for k, v in metrics.compute().items()}
    # P(y) = 0.2 (x), 0.7 (y), 0.4 (y): both y above the x → AUC 1; at p > 0.5 only image 2 is called y
    assert values["auc"] == pytest.approx(1.0)
    assert values["accuracy"] == pytest.approx(2 / 3)
    assert values["sensitivity"] == pytest.approx(1 / 2) and values["specificity"] == pytest.approx(1.0)


def test_a_source_class_without_evaluation_class_drops_out_and_rows_are_renormalised():
    mapping = toy({"a": "x", "b": "y", "c": None}, {"x": "x", "y": "y"})
    assert torch.allclose(mapping.merge(P), torch.tensor([[0.5 / 0.8, 0.3 / 0.8], [1 / 3, 2 / 3], [0.5, 0.5]]))
    # target side: z has no evaluation class, so its images are -1 (left out)
    left = toy({"a": "x", "b": "y", "c": None}, {"x": "x", "y": "y", "z": None}, target=("x", "y", "z"))
    assert left.target_labels(np.array([0, 2, 1])).tolist() == [0, -1, 1]


def test_three_class_merge_and_balanced_accuracy_by_hand():
    mapping = ClassMapping("abcd", "xyz", ("a", "b", "c", "d"), ("x", "y", "z"), ("x", "y", "z"),
                           {"a": "x", "b": "y", "c": "z", "d": "z"}, {"x": "x", "y": "y", "z": "z"})
    p = torch.tensor([[0.4, 0.3, 0.2, 0.1], [0.1, 0.5, 0.2, 0.2], [0.3, 0.3, 0.2, 0.2]])
    merged = mapping.merge(p)
    # the third image: z gets 0.2 + 0.2 = 0.4 > 0.3, so it is called z although no single source class wins
    assert torch.allclose(merged, torch.tensor([[0.4, 0.3, 0.3], [0.1, 0.5, 0.4], [0.3, 0.3, 0.4]]))
    metrics = classification_metrics(mapping.classes)
    metrics.update(merged, torch.tensor([0, 2, 2]))  # truths x, z, z: recall x 1/1, z 1/2 (y has no image)
    values = metrics.compute()
    assert float(values["recall_x"]) == pytest.approx(1.0) and float(values["recall_z"]) == pytest.approx(0.5)


def test_the_isic2018_isic2019_mapping_both_ways():
    to_2019 = mapping_between(HAM, ISIC2019)
    assert to_2019.classes == HAM and to_2019.name == "isic2018 → isic2019"
    # a 2019 AK image and a 2019 SCC image are both scored as AKIEC by a HAM10000 model
    assert to_2019.target_labels(np.array([ISIC2019.index("AK"), ISIC2019.index("SCC"), 0])).tolist() == [3, 3, 0]
    from_2019 = mapping_between(ISIC2019, HAM)
    p = torch.zeros(1, 8)
    p[0, ISIC2019.index("AK")], p[0, ISIC2019.index("SCC")], p[0, 0] = 0.1, 0.2, 0.7
    assert torch.allclose(from_2019.merge(p), torch.tensor([[0.7, 0, 0, 0.3, 0, 0, 0]]))


def test_mappings_through_the_hub():
    to_2017 = mapping_between(HAM, TAXONOMIES["isic2017_three_class"])
    assert to_2017.classes == ("nevus", "melanoma", "seborrheic_keratosis")
    assert [c for c, v in to_2017.from_source.items() if v is None] == ["BCC", "AKIEC", "DF", "VASC"]
    from_2017 = mapping_between(TAXONOMIES["isic2017_three_class"], HAM)
    assert from_2017.classes == ("MEL", "NV", "BKL")
    assert from_2017.target_labels(np.arange(7)).tolist() == [0, 1, -1, -1, 2, -1, -1]
    to_2016 = mapping_between(ISIC2019, ("benign", "malignant"))  # 2019 → hub → 2016
    assert [c for c in ISIC2019 if to_2016.from_source[c] == "malignant"] == ["MEL", "BCC", "AK", "SCC"]
    to_derm = mapping_between(ISIC2019, TAXONOMIES["derm7pt"])  # AKIEC has no derm7pt image: AK, SCC drop out
    assert to_derm.classes == TAXONOMIES["derm7pt"] and to_derm.from_source["AK"] is None
    assert mapping_between(("No", "Yes"), ("No", "Yes")).identity  # same classes: identity, known set or not
    assert "isic2018 → isic2019" in known_pairs() and "isic2019 → isic2017_melanoma" in known_pairs()


def test_a_pair_without_a_mapping_is_refused_naming_the_known_ones(tmp_path):
    with pytest.raises(DataError, match="no class mapping from isic2016 .* to isic2017_melanoma .*Known pairs: "
                                        ".*isic2018 → isic2019"):
        mapping_between(("benign", "malignant"), ("other", "melanoma"))
    data = HAM10000DataModule(str(tmp_path), test_on=VitiligoDataModule(str(tmp_path), classes=["No", "Yes"]))
    with pytest.raises(DataError, match="to an unknown class set \\(No, Yes\\)"):
        _ = data.test_mapping


def test_the_cli_refuses_an_unmapped_pair_in_one_line_before_training(synthetic, tmp_path, capsys):
    from dermlab.cli import main
    from tests.conftest import tiny_args

    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *tiny_args(synthetic("isic2016"), tmp_path / "run", "--data", str(EXPERIMENTS / "base" / "data" /
                                                                                     "isic2016.yaml"),
                                "--data.init_args.root", str(synthetic("isic2016")),
                                "--data.init_args.test_on", "{class_path: datamodules.ISIC2017DataModule, init_args: "
                                f"{{root: {synthetic('isic2017')}}}}}")])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("dermlab: error: no class mapping from isic2016 (benign, malignant) to isic2017_melanoma")
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_the_config_key_builds_both_data_modules(synthetic, tmp_path):
    from dermlab.commands.trainer import build_cli

    with contextlib.redirect_stdout(io.StringIO()):
        cli = build_cli(["-c", str(EXPERIMENTS / "demo_synthetic.yaml"), "--data",
                         str(EXPERIMENTS / "base" / "data" / "ham10000.yaml"),
                         "-c", str(EXPERIMENTS / "cross_dataset" / "isic2017_test.yaml"),
                         "--data.init_args.root", str(synthetic("ham10000")),
                         "--data.init_args.test_on.init_args.root", str(synthetic("isic2017")),
                         "--model.init_args.backbone", "test_resnet", "--trainer.default_root_dir", str(tmp_path),
                         "--run.wandb", "disabled"], run=False)
    data = cli.datamodule
    assert isinstance(data, HAM10000DataModule) and isinstance(data.test_on, ISIC2017DataModule)
    assert data.test_on.task == "three_class" and data.test_on.root == synthetic("isic2017")
    assert data.test_mapping.name == "isic2018 → isic2017_three_class"
    test = data.table("test")
    official = pd.read_csv(synthetic("isic2017") / "ISIC-2017_Test_v2_Part3_GroundTruth.csv")
    assert test.ids == official.image_id.tolist()  # every 2017 test image: all three classes have a mapping
    assert test.labels.tolist() == (official.melanoma + 2 * official.seborrheic_keratosis).astype(int).tolist()
    assert data.split_class_names("test") == ("nevus", "melanoma", "seborrheic_keratosis")
    assert cli.model.class_names == HAM  # the model keeps the training classes, and the CLI has given it the
    assert cli.model.test_mapping == data.test_mapping  # mapping its test split is scored through
    names = cli.model.logged_metric_names()
    assert "test/recall_nevus" in names and "val/recall_MEL" in names and "test/recall_MEL" not in names


def test_a_ham10000_experiment_composes_with_the_cross_pieces():
    from tests.test_experiments import parses

    printed = parses("-c", str(EXPERIMENTS / "patch" / "base.yaml"), "-c",
                     str(EXPERIMENTS / "cross_dataset" / "isic2018_test.yaml"))
    assert "HAM10000DataModule" in printed and "ISIC2018Task3DataModule" in printed


def test_the_triplet_classifier_keeps_its_nearest_class_mean_metrics_off_a_mapped_test_split():
    """The nearest-class-mean rule picks a training class, which the evaluation classes need not contain: on a
    mapped test split only the softmax metrics are logged (validation keeps both)."""
    from lightning_modules import TripletClassifier

    module = TripletClassifier(backbone="test_resnet", num_classes=7, class_names=HAM)
    module.use_test_mapping(mapping_between(HAM, TAXONOMIES["isic2017_three_class"]))
    names = module.logged_metric_names()
    assert "val/ncm_balanced_accuracy" in names and "test/ncm_balanced_accuracy" not in names
    assert "test/recall_seborrheic_keratosis" in names and module.ncm_skipped("test")


# --- the cross audit on two synthetic twins that share images ----------------------------------------------------
def twins(copy_of, tmp_path) -> tuple[Path, Path, dict]:
    """A synthetic HAM10000 (source, 5-fold split, fold 0) and a synthetic ISIC 2018 task 3 whose test truth (HAM10000
    layout, with lesion ids) adds three images that overlap the source's training split: A under its own id, B's
    pixels under a new id, and a new image of C's lesion. A, B and C are training images whose lesion has one image."""
    ham, isic = copy_of("ham10000"), copy_of("isic2018_task3")
    source = HAM10000DataModule(str(ham), split="kfold", fold=0, seed=0)
    train = source.table("train")
    per_lesion = pd.Series(source.table("train").groups + source.table("val").groups
                           + source.table("test").groups).value_counts()
    single = [i for i, g in zip(train.ids, train.groups, strict=True) if per_lesion[g] == 1]
    a, b, c = single[:3]
    where = dict(zip(train.ids, train.paths, strict=True))
    lesion = dict(zip(train.ids, train.groups, strict=True))
    folder = isic / "ISIC2018_Task3_Test_Input"
    shutil.copy(where[a], folder / f"{a}.jpg")
    shutil.copy(where[b], folder / "ISIC_0099999.jpg")
    shutil.copy(sorted((isic / "ISIC2018_Task3_Training_Input").glob("*.jpg"))[0], folder / "ISIC_0099998.jpg")
    truth = isic / "ISIC2018_Task3_Test_GroundTruth.csv"
    old = pd.read_csv(truth)
    dx = old[list(HAM)].to_numpy().argmax(1)
    rows = [f"HAMTEST_{k:04d},{image},{HAM[d].lower()},histo,50,male,back,vidir_modern"
            for k, (image, d) in enumerate(zip(old.image, dx, strict=True))]
    rows += [f"HAMTEST_9001,{a},nv,histo,50,male,back,vidir_modern",
             "HAMTEST_9002,ISIC_0099999,nv,histo,50,male,back,vidir_modern",
             f"{lesion[c]},ISIC_0099998,nv,histo,50,male,back,vidir_modern"]
    truth.write_text("lesion_id,image_id,dx,dx_type,age,sex,localization,dataset\n" + "\n".join(rows) + "\n")
    return ham, isic, {"image": a, "pixels": b, "lesion": c, "test": len(old) + 3}


def test_the_cross_audit_drops_shared_images_lesions_and_copies_from_training(copy_of, tmp_path):
    ham, isic, shared = twins(copy_of, tmp_path)
    data = HAM10000DataModule(str(ham), split="kfold", fold=0, seed=0, batch_size=4, num_workers=0,
                              test_on=ISIC2018Task3DataModule(str(isic), split="official"))
    before = set(data.table("train").ids)
    data.setup("fit")
    audit = data.split_audit
    assert not audit.leak, audit.leaks  # what is left is clean
    dropped = audit.cross_test["dropped"]
    assert dropped["counts"] == {"train": {"image": 1, "lesion": 1, "pixels": 1}} and dropped["images"] == 3
    assert before - set(data.table("train").ids) == {shared["image"], shared["pixels"], shared["lesion"]}
    assert len(data.table("test")) == shared["test"] and shared["image"] in data.table("test").ids
    assert audit.cross_test["data_module"] == "ISIC2018Task3DataModule" and audit.splits["test"] == shared["test"]


def test_keeping_the_overlap_leaves_the_leakage_policy_to_stop_the_run(copy_of, tmp_path):
    ham, isic, shared = twins(copy_of, tmp_path)
    data = HAM10000DataModule(str(ham), split="kfold", fold=0, seed=0, num_workers=0, test_on_overlap="keep",
                              test_on=ISIC2018Task3DataModule(str(isic), split="official"))
    with pytest.raises(DataError, match="test_on_overlap: keep.*1 lesion id\\(s\\) shared by train/test.*"
                                        f"1 image id\\(s\\) in both train/test \\(e.g. {shared['image']}\\).*"
                                        "identical images"):
        data.setup("fit")


def test_dermlab_audit_reports_what_a_cross_run_leaves_out(copy_of, tmp_path, capsys):
    from dermlab.commands.audit import main

    ham, isic, shared = twins(copy_of, tmp_path)
    main(["-c", str(EXPERIMENTS / "demo_synthetic.yaml"), "--data", str(EXPERIMENTS / "base" / "data" /
                                                                       "ham10000.yaml"),
          "-c", str(EXPERIMENTS / "cross_dataset" / "isic2018_test.yaml"), "--data.init_args.root", str(ham),
          "--data.init_args.test_on.init_args.root", str(isic)])
    report = json.loads(capsys.readouterr().out)
    assert report["leak"] is False and report["cross_test"]["dropped"]["images"] == 3
    assert report["cross_test"]["mapping"]["name"] == "isic2018 → isic2018"


@pytest.mark.skipif(not (SHARED_DATA / "isic2019").is_dir(), reason="../shared/data (real ISIC truths) not present")
def test_the_real_isic2019_training_set_holds_isic2017_test_images_under_downsampled_ids():
    """ISIC 2019's 25,331 training ids against the released ISIC 2017 test set (600), HAM10000 (10,015) and the
    ISIC 2018 test set (1,512): 595, 10,015 and 0 shared images, 2,074 of the 2019 ids with ``_downsampled``."""
    ids2019 = pd.read_csv(SHARED_DATA / "isic2019" / "ISIC_2019_Training_GroundTruth.csv").image.tolist()
    assert sum(i.endswith("_downsampled") for i in ids2019) == 2074
    assert canonical_id("ISIC_0000017_downsampled") == "ISIC_0000017" == canonical_id("ISIC_0000017")

    def table(ids, name):
        return ImageTable(list(ids), [Path(name)] * len(ids), np.zeros(len(ids), int), Path(name))

    train = table(ids2019, "isic2019")
    tests = {"isic2017": pd.read_csv(SHARED_DATA / "isic2017" / "ISIC-2017_Test_v2_Part3_GroundTruth.csv").image_id,
             "ham10000": pd.read_csv(SHARED_DATA / "ham10000" / "HAM10000_metadata.csv").image_id,
             "isic2018": pd.read_csv(SHARED_DATA / "isic2018" / "ISIC2018_Task3_Test_GroundTruth.csv").image_id}
    shared = {}
    for name, ids in tests.items():
        tables = {"train": train, "test": table(ids, name)}
        audit = audit_splits(tables)
        shared[name] = audit.shared_images["train/test"]
        assert sum(len(v) for v in overlap(tables, audit).get("train", {}).values()) == shared[name]
    assert shared == {"isic2017": 595, "ham10000": 10015, "isic2018": 0}


@pytest.mark.skipif(not (SHARED_DATA / "isic2018").is_dir(), reason="../shared/data (real ISIC truths) not present")
def test_an_isic2017_model_on_the_real_isic2018_test_set_leaves_out_the_classes_it_cannot_name(tmp_path):
    """The released truths (images absent: the audit reads the files as listed): ISIC 2017 three-class training
    (2,000) → ISIC 2018 test (1,512, HAMTEST_* lesions) scores 1,297 images on MEL, NV, BKL and leaves out BCC 93,
    AKIEC 43, DF 44, VASC 35; no image or lesion id is shared."""
    isic2017, isic2018 = tmp_path / "isic2017", tmp_path / "isic2018"
    for folder in ("Training", "Validation", "Test_v2"):
        (isic2017 / f"ISIC-2017_{folder}_Data").mkdir(parents=True)
        shutil.copy(SHARED_DATA / "isic2017" / f"ISIC-2017_{folder}_Part3_GroundTruth.csv", isic2017)
        (isic2017 / f"ISIC-2017_{folder}_Data" / "ISIC_0000000.jpg").touch()  # a folder must hold an image
    (isic2018 / "ISIC2018_Task3_Test_Input").mkdir(parents=True)
    (isic2018 / "ISIC2018_Task3_Test_Input" / "ISIC_0034524.jpg").touch()
    shutil.copy(SHARED_DATA / "isic2018" / "ISIC2018_Task3_Test_GroundTruth.csv", isic2018)
    data = ISIC2017DataModule(str(isic2017), task="three_class", audit_pixels=False,
                              test_on=ISIC2018Task3DataModule(str(isic2018)))
    audit = data.audit(screened=False)
    assert audit.splits == {"train": 2000, "val": 150, "test": 1297, "extra": None} and not audit.leak
    assert audit.cross_test["left_out"] == {"AKIEC": 43, "BCC": 93, "DF": 44, "VASC": 35}
    assert audit.cross_test["mapping"]["classes"] == ["MEL", "NV", "BKL"]
    labels = np.bincount(data.raw_table("test").labels, minlength=3).tolist()
    assert labels == [171, 909, 217]  # MEL, NV, BKL of the 2018 test truth


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


def test_the_report_names_each_rows_test_set(tmp_path):
    from dermlab.grid import report as reporting
    from dermlab.grid import spec

    grid = spec.load(EXPERIMENTS / "cross_dataset" / "tables" / "patch_ham10000.yaml")
    mapping = mapping_between(HAM, TAXONOMIES["isic2017_three_class"])
    for cell, auc in zip(grid.cells(), (0.9, 0.8, 0.7, 0.6), strict=True):
        folder = grid.run_root(tmp_path, False) / cell.id
        folder.mkdir(parents=True)
        cross = None if cell.settings["test set"]["data.init_args.test_on"] is None else {
            "data_module": "ISIC2017DataModule", "root": "data/isic2017", "mapping": mapping.to_json(),
            "images": 600, "left_out": {}, "dropped": {"images": 0}}
        (folder / "result.json").write_text(json.dumps({"metrics": {"test/auc": auc}, "test_on": cross}))
    text = reporting.report(grid, tmp_path)
    assert "**Test sets:**" in text and "- HAM10000 test part: its own test split" in text
    assert ("- ISIC 2017 test (3 classes): ISIC2017DataModule test split at 'data/isic2017' (600 images; classes "
            "isic2018 → isic2017_three_class: nevus, melanoma, seborrheic_keratosis)") in text


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
