"""No test image, and no lesion of a test image, helps train or select a model: splits and the split audit.

The real-metadata tests use ../shared/data (HAM10000's 10,015 rows, ISIC 2018's lesion groupings, derm7pt's
meta); images stand in as empty files there, so they audit ids and lesion ids. The pixel checks plant copies
in the tiny synthetic sets.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from datamodules import HAM10000DataModule, ISIC2017DataModule, ISIC2018Task3DataModule, splits
from datamodules.audit import audit_splits
from datamodules.datasets.table import ImageTable
from datamodules.fingerprints import FingerprintStore
from dermlab.errors import DataError
from tests.conftest import HAM_METADATA, REPO, SHARED_DATA, derm7pt_release, tiny_args, touch_images

HAM = HAM_METADATA
needs_shared = pytest.mark.skipif(not HAM.is_file(), reason="../shared/data (real HAM10000 metadata) not present")
ROLES = ("train", "val", "test")


def assert_no_shared_lesion(data):
    tables = {s: data.table(s) for s in ROLES}
    for i, a in enumerate(ROLES):
        for b in ROLES[i + 1:]:
            assert not set(tables[a].ids) & set(tables[b].ids), f"{a}/{b} share images"
            if len(tables[a]) and len(tables[b]):
                assert not set(tables[a].groups) & set(tables[b].groups), f"{a}/{b} share lesions"
    return tables


# --- the schemes on the real HAM10000 metadata ------------------------------------------------------------
SCHEMES = [("kfold", f) for f in range(5)] + [("patch", f) for f in range(3)] + [("weighting", f) for f in (0, 1)]


@needs_shared
@pytest.mark.parametrize(("scheme", "fold"), SCHEMES)
def test_every_scheme_and_fold_keeps_lesions_on_one_side(ham_root, scheme, fold):
    data = HAM10000DataModule(str(ham_root), split=scheme, fold=fold, audit_pixels=False)  # images are empty files
    tables = assert_no_shared_lesion(data)
    assert sum(len(t) for t in tables.values()) == 10015
    audit = data.audit(screened=False)
    assert not audit.leak and audit.shared_lesions.get("train/test", 0) == 0
    if scheme == "weighting":  # the paper's protocol: the whole 80 % trains, nothing validates
        assert len(tables["val"]) == 0 and 0.18 < len(tables["test"]) / 10015 < 0.22


@needs_shared
def test_kfold_tests_each_image_once_and_validates_on_other_images(ham_root):
    tested, validated = [], []
    for fold in range(5):
        data = HAM10000DataModule(str(ham_root), split="kfold", fold=fold)
        tested += data.table("test").ids
        validated += data.table("val").ids
        assert set(data.table("val").ids) == set(HAM10000DataModule(str(ham_root), split="kfold",
                                                                     fold=(fold + 1) % 5).table("test").ids)
    assert sorted(tested) == sorted(validated) and len(set(tested)) == 10015


@needs_shared
def test_patch_parts_hold_the_pools_class_proportions(ham_root):
    pool = HAM10000DataModule(str(ham_root)).table("pool")
    overall = np.bincount(pool.labels, minlength=7) / len(pool)
    data = [HAM10000DataModule(str(ham_root), split="patch", fold=f) for f in range(3)]
    parts = [d.table("val") for d in data] + [data[0].table("test")]
    assert sorted(i for p in parts for i in p.ids) == sorted(pool.ids)  # four parts cover the pool once
    for part in parts:
        share = np.bincount(part.labels, minlength=7) / len(part)
        assert np.abs(share - overall).max() < 0.01, (share, overall)  # within 1 percentage point
        assert 0.23 < len(part) / len(pool) < 0.27
    lesion_sets = [set(p.groups) for p in parts]
    assert all(not (a & b) for i, a in enumerate(lesion_sets) for b in lesion_sets[i + 1:])


@needs_shared
def test_dds_isic2018_validation_moves_whole_lesions(tmp_path):
    """dds §3: 999 training images move to validation; here as whole lesions of the real groupings."""
    groupings = pd.read_csv(SHARED_DATA / "isic2018" / "ISIC2018_Task3_Training_LesionGroupings.csv")
    meta = pd.read_csv(HAM).set_index("image_id").loc[groupings.image]
    truth = pd.DataFrame({"image": groupings.image})
    for name in ("MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"):
        truth[name] = (meta.dx.str.upper().to_numpy() == name).astype(float)
    truth.to_csv(tmp_path / "ISIC2018_Task3_Training_GroundTruth.csv", index=False)
    shutil.copy(SHARED_DATA / "isic2018" / "ISIC2018_Task3_Training_LesionGroupings.csv", tmp_path)
    touch_images(tmp_path / "ISIC2018_Task3_Training_Input", groupings.image)
    released = truth.iloc[:0].copy()
    released.loc[0] = ["ISIC_0034321", 0, 1, 0, 0, 0, 0, 0]
    released.to_csv(tmp_path / "ISIC2018_Task3_Validation_GroundTruth.csv", index=False)
    touch_images(tmp_path / "ISIC2018_Task3_Validation_Input", released.image)
    data = ISIC2018Task3DataModule(str(tmp_path), split="holdout", val_size=999)
    moved = data.table("val").subset(range(len(data.table("val")) - 1))  # the released image comes last
    assert len(moved) == 999  # the count the greedy whole-lesion draw reaches on the real groupings
    assert not set(moved.groups) & set(data.table("train").groups)
    assert len(data.table("train")) == 10015 - 999


@needs_shared
def test_spc_and_weighting_configs_steer_on_nothing_from_test(ham_root, tmp_path):
    """The resolved configs: nothing chooses a checkpoint or drives the learning rate on test images."""
    from dermlab.commands.audit import selection
    from dermlab.commands.trainer import build_cli

    derm7pt_release(tmp_path)
    experiments = REPO / "experiments"
    runs = {
        "spc": ["-c", str(experiments / "patch" / "base.yaml"), "-c", str(experiments / "patch" / "spc.yaml"),
                "--data.init_args.root", str(tmp_path)],
        "weighting": ["-c", str(experiments / "weighting" / "base.yaml"), "--data.init_args.root", str(ham_root)],
    }
    for name, args in runs.items():
        cli = build_cli(args + ["--model.init_args.backbone", "test_resnet" if name == "spc" else "vgg11",
                                "--run.wandb", "disabled", "--trainer.logger", "false",
                                "--trainer.default_root_dir", str(tmp_path / name)], run=False)
        steering = selection(cli.config, len(cli.datamodule.table("val")))
        assert steering == {"val_images": 0, "monitors": []}, (name, steering)
        assert cli.datamodule.val_dataloader() == []  # Lightning then runs no validation loop at all
        assert not set(cli.datamodule.table("train").ids) & set(cli.datamodule.table("test").ids)
    cli = build_cli(["-c", str(experiments / "patch" / "base.yaml"), "--data.init_args.root", str(ham_root),
                     "--model.init_args.backbone", "test_resnet", "--run.wandb", "disabled", "--trainer.logger",
                     "false"], run=False)  # HAM10000: the checkpoint and plateau follow the validation part only
    assert selection(cli.config, len(cli.datamodule.table("val"))) == {
        "val_images": 2505, "monitors": ["ModelCheckpoint: val/balanced_accuracy",
                                         "ReduceLROnPlateau: val/balanced_accuracy"]}
    assert not set(cli.datamodule.table("val").ids) & set(cli.datamodule.table("test").ids)


# --- the splitters by hand ------------------------------------------------------------------------------------
def test_grouped_holdout_moves_whole_lesions_until_the_count():
    groups = ["a", "a", "b", "c", "c", "c", "d", "e"]
    split = splits.random_holdout(len(groups), 3, seed=0, groups=groups)
    val_lesions = {groups[i] for i in split["val"]}
    assert len(split["val"]) == 3 and not val_lesions & {groups[i] for i in split["train"]}
    assert sorted(split["val"].tolist() + split["train"].tolist()) == list(range(8))
    ungrouped = splits.random_holdout(8, 3, seed=0)
    assert len(ungrouped["val"]) == 3


@pytest.mark.parametrize("n_val", [0, 8, 251])
def test_a_holdout_that_cannot_fit_names_the_setting_and_its_range(n_val):
    with pytest.raises(DataError, match=rf"cannot move {n_val} of 8 training images to validation: set "
                                        r"--data\.init_args\.val_size .* between 1 and 7$"):
        splits.random_holdout(8, n_val, seed=0)


def test_grouped_kfold_needs_three_folds_and_separates_val_from_test():
    labels = np.array([0, 1] * 12)
    groups = [f"L{i // 2}" for i in range(24)]
    with pytest.raises(DataError, match="at least 3"):
        splits.grouped_kfold(labels, groups, 0, 2, seed=0)
    split = splits.grouped_kfold(labels, groups, 2, 4, seed=0)
    assert not set(split["val"]) & set(split["test"]) and len(split["train"]) + len(split["val"]) + len(
        split["test"]) == 24


# --- the pixel audit on the tiny synthetic ISIC 2017 set --------------------------------------------------------
def _plant(root, source_id: str, target_id: str, folder_from: str, folder_to: str, comment: bool = False):
    """Overwrite image ``target_id`` with the pixels of ``source_id`` (a JPEG comment changes the bytes only)."""
    data = (root / folder_from / f"{source_id}.jpg").read_bytes()
    if comment:  # insert a COM segment after SOI: other bytes, same decoded pixels
        text = b"re-shared copy"
        data = data[:2] + b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text + data[2:]
    (root / folder_to / f"{target_id}.jpg").write_bytes(data)


def test_identical_image_under_two_ids_is_caught(broken_root, tmp_path):
    clean = ISIC2017DataModule(str(broken_root))
    train_id, test_id = clean.table("train").ids[0], clean.table("test").ids[0]
    _plant(broken_root, test_id, train_id, "ISIC-2017_Test_v2_Data", "ISIC-2017_Training_Data", comment=True)
    assert (broken_root / "ISIC-2017_Training_Data" / f"{train_id}.jpg").read_bytes() != (
        broken_root / "ISIC-2017_Test_v2_Data" / f"{test_id}.jpg").read_bytes()
    with pytest.raises(DataError, match=rf"1 pair\(s\) of identical images.*{train_id} \(train\) = {test_id} \(test\)"):
        ISIC2017DataModule(str(broken_root)).setup("fit")
    warned = ISIC2017DataModule(str(broken_root), leakage="warn")
    warned.setup("fit")  # goes on, and says so
    report = warned.split_audit.to_json()
    assert report["leak"] and report["duplicate_images"] == 1 and report["pairs"] == [[train_id, test_id]]
    assert ISIC2017DataModule(str(broken_root), audit_pixels=False).audit().leak is False  # ids alone miss it


def test_extra_training_image_that_is_a_test_image_under_a_new_id_is_caught(isic2017_root, tmp_path):
    test_id = ISIC2017DataModule(str(isic2017_root)).table("test").ids[3]
    extra = tmp_path / "archive"
    extra.mkdir()
    shutil.copy(isic2017_root / "ISIC-2017_Test_v2_Data" / f"{test_id}.jpg", extra / "ISIC_9100000.jpg")
    (extra / "archive.csv").write_text("image_id,melanoma,seborrheic_keratosis\nISIC_9100000,0.0,0.0\n")
    data = ISIC2017DataModule(str(isic2017_root), extra_train_csv=str(extra / "archive.csv"))
    with pytest.raises(DataError, match=rf"{test_id} \(test\) = ISIC_9100000 \(extra\)"):
        data.setup("fit")
    audit = data.split_audit or data.audit()
    assert audit.splits == {"train": len(data.table("train")) - 1, "val": len(data.table("val")),
                            "test": len(data.table("test")), "extra": 1}


def test_published_duplicates_list_is_applied(broken_root):
    clean = ISIC2017DataModule(str(broken_root))
    val_id, test_id = clean.table("val").ids[1], clean.table("test").ids[2]
    (broken_root / "ISIC_2020_Training_Duplicates.csv").write_text(f"image_name_1,image_name_2\n{test_id},{val_id}\n")
    audit = ISIC2017DataModule(str(broken_root)).audit()
    assert audit.pairs == [[val_id, test_id]] and audit.pair_splits == ["val/test"]


def test_run_folder_holds_the_audit(isic2017_root, tmp_path):
    from dermlab.commands.trainer import build_cli

    run = tmp_path / "run"
    build_cli(["fit", *tiny_args(isic2017_root, run, "--trainer.fast_dev_run", "true")])
    audit = json.loads((run / "splits" / "audit.json").read_text())
    assert audit["leak"] is False and audit["splits"]["train"] == 24 and audit["fingerprinted"] == 24 + 8 + 12


def test_audit_command_prints_json_and_exits_2_on_a_leak(broken_root, capsys):
    from dermlab.commands.audit import main

    args = ["-c", str(REPO / "experiments" / "demo_synthetic.yaml"), "--data.init_args.root", str(broken_root),
            "--model.init_args.backbone", "test_resnet"]
    main(args)
    clean = json.loads(capsys.readouterr().out)
    assert clean["leak"] is False and clean["splits"] == {"train": 24, "val": 8, "test": 12, "extra": None}
    assert clean["selection"]["val_images"] == 8 and clean["selection"]["monitors"] == ["ModelCheckpoint: val/auc"]
    data = ISIC2017DataModule(str(broken_root))
    val_id, test_id = data.table("val").ids[0], data.table("test").ids[0]
    _plant(broken_root, val_id, test_id, "ISIC-2017_Validation_Data", "ISIC-2017_Test_v2_Data")
    with pytest.raises(SystemExit) as leaving:
        main(args)
    assert leaving.value.code == 2
    leaked = json.loads(capsys.readouterr().out)
    assert leaked["duplicate_images"] == 1 and leaked["pairs"] == [[val_id, test_id]]
    with pytest.raises(SystemExit) as leaving:  # an unreadable config is exit 1 and names the bad key, not a leak
        main([*args, "--data.init_args.batch_sise", "3"])
    assert leaving.value.code == 1 and "batch_sise" in capsys.readouterr().err
    with pytest.raises(SystemExit) as leaving:
        main([*args, "--data.init_args.duplicates_csv", str(broken_root / "no_such.csv")])
    assert leaving.value.code == 1 and "no_such.csv' does not exist" in capsys.readouterr().err


def test_fingerprints_are_cached_and_follow_the_file(tmp_path, monkeypatch):
    from PIL import Image

    from datamodules import fingerprints

    path = tmp_path / "a.png"
    Image.fromarray(np.zeros((4, 5, 3), np.uint8)).save(path)
    store = FingerprintStore(tmp_path / "cache")
    first = store.get([path, tmp_path / "missing.png"])
    assert first[0] is not None and first[1] is None
    monkeypatch.setitem(fingerprints.COMPUTE, "exact", lambda p: pytest.fail("decoded again"))
    assert FingerprintStore(tmp_path / "cache").get([path]) == first[:1]  # a second set-up decodes nothing
    monkeypatch.undo()
    Image.fromarray(np.full((4, 5, 3), 7, np.uint8)).save(path)
    assert store.get([path]) != first[:1]  # a changed file is hashed again


def test_near_duplicates_are_reported_when_asked(broken_root):
    from PIL import Image

    data = ISIC2017DataModule(str(broken_root))
    train_id, test_id = data.table("train").ids[5], data.table("test").ids[5]
    source = Image.open(broken_root / "ISIC-2017_Test_v2_Data" / f"{test_id}.jpg")
    source.save(broken_root / "ISIC-2017_Training_Data" / f"{train_id}.jpg", quality=70)  # re-compressed
    assert not ISIC2017DataModule(str(broken_root)).audit().leak  # other pixels: no exact duplicate
    near = ISIC2017DataModule(str(broken_root), near_duplicates=True).audit().near_duplicates
    assert [train_id, test_id] in [p[:2] for p in near["pairs"]]


def test_audit_counts_lesions_only_where_both_sides_have_ids():
    def table(ids, groups):
        return ImageTable(ids, [], np.zeros(len(ids), int), source=None, groups=groups)

    audit = audit_splits({"train": table(["a", "b"], ["L1", "L2"]), "val": table(["c"], ["L3"]),
                          "test": table(["d", "e"], ["L2", ""]), "extra": table(["f"], None)})
    assert audit.shared_lesions == {"train/val": 0, "train/test": 1, "val/test": 0}
    assert audit.leak and "1 lesion id(s) shared by train/test (e.g. L2)" in audit.leaks[0]
    harmless = audit_splits({"train": table(["a"], ["L1"]), "test": table(["d"], ["L9"]),
                             "extra": table(["a2"], ["L1"])})
    assert harmless.shared_lesions["train/extra"] == 1 and not harmless.leak
