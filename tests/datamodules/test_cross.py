"""``datamodules/cross.py``: testing on another data set (``test_on``): the config key, the cross audit on twins that
share images, and the overlaps of the real ISIC truths."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from datamodules import HAM10000DataModule, ISIC2017DataModule, ISIC2018Task3DataModule
from datamodules.audit import audit_splits, canonical_id
from datamodules.cross import overlap
from datamodules.datasets.table import ImageTable
from dermlab.errors import DataError
from tests.conftest import SHARED_DATA
from tests.helpers.cross_dataset import EXPERIMENTS, HAM


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


@pytest.mark.real_data
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


@pytest.mark.real_data
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
