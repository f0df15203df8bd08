"""Every datamodule reads its synthetic official layout: counts, labels, masks, batches."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from datamodules import DATAMODULES
from datamodules.synthetic.render import ATTRIBUTES

OPTIONS = {"isic2016": {"val_size": 6}, "ham10000": {"split": "kfold", "n_folds": 3}, "isic2019": {"n_folds": 3},
           "isic2020": {"n_folds": 3}}
COUNTS = {  # (train, val, test) for 24 synthetic training images
    "isic2016": (18, 6, 12), "isic2017": (24, 8, 12), "isic2018_task1": (24, 8, 12), "isic2018_task2": (24, 8, 12),
    "isic2018_task3": (24, 8, 12), "vitiligo": (24, 8, 12),
}


def make(name, root, **kwargs):
    cls, fixed = DATAMODULES[name]
    return cls(str(root), image_size=32, batch_size=4, num_workers=0, **fixed, **OPTIONS.get(name, {}), **kwargs)


@pytest.mark.parametrize("name", sorted(DATAMODULES))
def test_synthetic_layout_loads(name, synthetic):
    data = make(name, synthetic(name))
    sizes = tuple(len(data.table(s)) for s in ("train", "val", "test"))
    if name in COUNTS:
        assert sizes == COUNTS[name]
    batch = next(iter(data.train_dataloader()))
    assert batch["image"].shape == (4, 3, 32, 32)
    assert batch["weight"].tolist() == [1.0] * 4
    if name.startswith("isic2018_task") and name != "isic2018_task3":
        channels = 1 if name.endswith("1") else 5
        assert batch["mask"].shape == (4, channels, 32, 32) and set(batch["mask"].unique().tolist()) <= {0.0, 1.0}
    else:
        assert 0 <= batch["label"].min() and batch["label"].max() < data.num_classes


def test_ham10000_pool_labels_groups_and_dx_type(synthetic):
    root = synthetic("ham10000")
    meta = pd.read_csv(root / "HAM10000_metadata.csv")
    data = make("ham10000", root)
    pool = data.table("pool")
    codes = ["mel", "nv", "bcc", "akiec", "bkl", "df", "vasc"]
    assert [codes[i] for i in pool.labels] == meta.dx.tolist()
    assert pool.groups == meta.lesion_id.tolist() and pool.extra["dx_type"] == meta.dx_type.tolist()
    assert meta.lesion_id.duplicated().any()  # the generator repeats lesions, like HAM
    assert {p.parent.name for p in pool.paths} == {"HAM10000_images_part_1", "HAM10000_images_part_2"}


def test_ham10000_flat_folder_is_accepted(synthetic, tmp_path):
    source = synthetic("ham10000")
    (tmp_path / "images").mkdir()
    for path in source.glob("HAM10000_images_part_*/*.jpg"):
        (tmp_path / "images" / path.name).write_bytes(path.read_bytes())
    (tmp_path / "HAM10000_metadata.csv").write_bytes((source / "HAM10000_metadata.csv").read_bytes())
    assert len(make("ham10000", tmp_path).table("pool")) == 24


def test_diagnosis_guided_weights_reach_the_batch(synthetic):
    weights = {"consensus": 1.0, "follow_up": 2.0, "confocal": 3.0, "histo": 4.0}
    data = make("ham10000", synthetic("ham10000"), dx_type_weights=weights, dx_type_weights_on="all")
    table = data.table("train")
    assert table.weights.tolist() == [weights[t] for t in table.extra["dx_type"]]
    sample = data.dataset("train")[0]
    assert sample["weight"] == weights[table.extra["dx_type"][0]]


def test_isic2018_task3_groupings_and_one_hot(synthetic):
    root = synthetic("isic2018_task3")
    truth = pd.read_csv(root / "ISIC2018_Task3_Training_GroundTruth.csv")
    data = make("isic2018_task3", root)
    train = data.table("train")
    assert train.labels.tolist() == truth.iloc[:, 1:].to_numpy().argmax(1).tolist()
    groupings = pd.read_csv(root / "ISIC2018_Task3_Training_LesionGroupings.csv")
    assert train.groups == groupings.lesion_id.tolist()
    assert set(train.extra["dx_type"]) <= {"histo", "follow_up", "consensus", "confocal"}
    kfold = make("isic2018_task3", root, split="kfold", n_folds=3, fold=1)
    assert not set(kfold.table("train").groups) & set(kfold.table("val").groups)


@pytest.mark.parametrize("task", [1, 2])
def test_masks_match_the_drawn_lesion(synthetic, task):
    root = synthetic(f"isic2018_task{task}")
    data = make(f"isic2018_task{task}", root, eval_transforms="none")
    table = data.table("val")
    image = np.asarray(Image.open(table.paths[0]))
    masks = [np.asarray(Image.open(m)) for m in table.masks[0]]
    assert all(m.shape == image.shape[:2] and set(np.unique(m)) <= {0, 255} for m in masks)
    if task == 1:  # the lesion is darker than the skin around it
        lesion = masks[0] > 0
        assert image[lesion].mean() < image[~lesion].mean()
    else:
        assert [m.name.split("_attribute_")[1][:-4] for m in table.masks[0]] == list(ATTRIBUTES)
    sample = data.dataset("val")[0]  # resized jointly with the image (OpenCV's nearest differs from PIL's by a pixel)
    ours = sample["mask"][0] > 0.5
    expected = torch.as_tensor(np.asarray(Image.fromarray(masks[0]).resize((32, 32), Image.NEAREST)) > 0)
    if task == 1:  # a whole lesion; attribute masks are a few pixels of dots and lines at 32 px
        assert (ours & expected).sum() / (ours | expected).sum() > 0.8


def test_attribute_masks_cover_what_was_painted(synthetic):
    root = synthetic("isic2018_task2")
    folder = root / "ISIC2018_Task2_Training_GroundTruth_v3"
    painted = {a: sum(np.asarray(Image.open(p)).any() for p in folder.glob(f"*_attribute_{a}.png")) for a in ATTRIBUTES}
    assert painted["pigment_network"] > 0  # common in nevi, which dominate the synthetic set


def test_segmentation_cross_validation_fold(synthetic):
    data = make("isic2018_task1", synthetic("isic2018_task1"), cv_fold=2, n_folds=4)
    train, val = data.table("train"), data.table("val")
    assert len(val) == 6 and len(train) == 18 and not set(train.ids) & set(val.ids)


def test_vitiligo_other_class_names(synthetic, tmp_path):
    import shutil

    shutil.copytree(synthetic("vitiligo"), tmp_path / "v")
    for split in ("train", "val", "test"):
        (tmp_path / "v" / split / "Yes").rename(tmp_path / "v" / split / "vitiligo")
        (tmp_path / "v" / split / "No").rename(tmp_path / "v" / split / "other")
    renamed = make("vitiligo", tmp_path / "v", classes=("other", "vitiligo"))
    original = make("vitiligo", synthetic("vitiligo"))
    assert renamed.class_names == ("other", "vitiligo")
    assert renamed.table("train").labels.tolist() == original.table("train").labels.tolist()


def test_derm7pt_maps_to_six_classes_and_merges_valid(synthetic):
    root = synthetic("derm7pt")
    plain, merged = make("derm7pt", root), make("derm7pt", root, merge_valid=True)
    assert plain.num_classes == 6 and "AKIEC" not in plain.class_names
    assert len(merged.table("train")) == len(plain.table("train")) + len(plain.table("val"))
    assert len(merged.table("val")) == 0 and merged.val_dataloader() == []  # nothing is chosen on the test cases
    assert merged.table("test").ids == plain.table("test").ids


def test_split_files_are_written_to_the_run_folder(synthetic, tmp_path):
    from dermlab.cli import main
    from tests.conftest import REPO

    main(["fit", "-c", str(REPO / "experiments" / "demo_synthetic.yaml"),
          "--data", str(REPO / "experiments" / "base" / "data" / "ham10000.yaml"),
          "--data.init_args.root", str(synthetic("ham10000")), "--data.init_args.n_folds", "3",
          "--data.init_args.image_size", "32", "--data.init_args.num_workers", "0", "--data.init_args.batch_size", "4",
          "--model.init_args.backbone", "test_resnet", "--trainer.default_root_dir", str(tmp_path / "run"),
          "--run.wandb", "disabled", "--trainer.fast_dev_run", "true"])
    train = pd.read_csv(tmp_path / "run" / "splits" / "train.csv")
    val = pd.read_csv(tmp_path / "run" / "splits" / "val.csv")
    assert list(train.columns) == ["image_id", "label", "lesion_id", "dx_type"]
    assert not set(train.lesion_id) & set(val.lesion_id)
    audit = json.loads((tmp_path / "run" / "splits" / "audit.json").read_text())  # the test fold is the third
    assert audit["splits"]["train"] == len(train) and len(train) + len(val) + audit["splits"]["test"] == 24
    assert not audit["leak"] and set(audit["shared_lesions"].values()) == {0}


def test_isic2018_task3_holdout_moves_images_to_validation(synthetic):
    root = synthetic("isic2018_task3")
    data = make("isic2018_task3", root, split="holdout", val_size=5)  # dds: 999 of 10015 join the 193 released
    train, val, test = (data.table(s) for s in ("train", "val", "test"))
    released = pd.read_csv(root / "ISIC2018_Task3_Validation_GroundTruth.csv").image.tolist()
    assert (len(train), len(val)) == (19, 5 + len(released)) and not set(train.ids) & set(val.ids)
    assert val.ids[5:] == released and len(val.labels) == len(val.paths) == len(val)
    official_test = pd.read_csv(root / "ISIC2018_Task3_Test_GroundTruth.csv").image.tolist()
    assert test.ids == official_test
