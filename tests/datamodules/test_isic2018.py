"""``datamodules/isic2018.py``: tasks 1-3 on their synthetic layouts, bad input, hold-outs and folds, and the real
lesion groupings and HAM-layout test truth."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from datamodules import ISIC2018SegmentationDataModule, ISIC2018Task3DataModule
from datamodules.synthetic.render import ATTRIBUTES
from dermlab.errors import DataError
from tests.conftest import SHARED_DATA, touch_images
from tests.helpers.datamodules import make
from tests.helpers.leakage import HAM, needs_shared
from tests.helpers.official_scorer import CATEGORIES, DX_COUNTS, HAM_TEST_TRUTH, needs_ham_truth
from tests.helpers.real_metadata import HAM_COUNTS


def test_task3_takes_extra_minority_images_from_a_csv(synthetic, tmp_path):
    """The paper adds 162 Dermofit VASC / DF images to training: a CSV in the task 3 layout plus its images."""
    import shutil

    from datamodules.isic2018 import ISIC2018Task3DataModule

    root = synthetic("isic2018_task3")
    source = next((root / "ISIC2018_Task3_Training_Input").glob("*.jpg"))
    extra = tmp_path / "dermofit"
    extra.mkdir()
    for name in ("DF_0001", "VASC_0002"):
        shutil.copy(source, extra / f"{name}.jpg")
    pd.DataFrame({"image": ["DF_0001", "VASC_0002"], "MEL": 0.0, "NV": 0.0, "BCC": 0.0, "AKIEC": 0.0, "BKL": 0.0,
                  "DF": [1.0, 0.0], "VASC": [0.0, 1.0]}).to_csv(extra / "extra.csv", index=False)
    plain = ISIC2018Task3DataModule(str(root), num_workers=0).table("train")
    data = ISIC2018Task3DataModule(str(root), num_workers=0, extra_train_csv=str(extra / "extra.csv"))
    train = data.table("train")
    assert len(train) == len(plain) + 2 and train.ids[-2:] == ["DF_0001", "VASC_0002"]
    assert [data.class_names[i] for i in train.labels[-2:]] == ["DF", "VASC"]


def test_mask_of_the_wrong_size(copy_of):
    root = copy_of("isic2018_task1")
    mask = next((root / "ISIC2018_Task1_Training_GroundTruth").glob("*.png"))
    Image.new("L", (7, 5)).save(mask)
    data = ISIC2018SegmentationDataModule(str(root), num_workers=0)
    index = data.table("train").ids.index(mask.name.removesuffix("_segmentation.png"))
    with pytest.raises(DataError, match=f"mask '.*{mask.name}' is 7x5 but its image is 32x24"):
        data.dataset("train")[index]


def test_missing_mask(copy_of):
    root = copy_of("isic2018_task1")
    mask = next((root / "ISIC2018_Task1_Training_GroundTruth").glob("*.png"))
    mask.unlink()
    with pytest.raises(DataError, match=f"1 mask\\(s\\) are missing .*{mask.name}"):
        ISIC2018SegmentationDataModule(str(root)).table("train")


def test_one_hot_row_that_does_not_sum_to_one(copy_of):
    root = copy_of("isic2018_task3")
    csv = root / "ISIC2018_Task3_Training_GroundTruth.csv"
    table = pd.read_csv(csv)
    table.loc[3, "DF"] = 1.0 - table.loc[3, "DF"]  # now sums to 0 or 2
    table.to_csv(csv, index=False)
    with pytest.raises(DataError, match=f"row 5 \\({table.image[3]}\\) is not one-hot"):
        ISIC2018Task3DataModule(str(root)).table("train")


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


def test_segmentation_cross_validation_fold(synthetic):
    data = make("isic2018_task1", synthetic("isic2018_task1"), cv_fold=2, n_folds=4)
    train, val = data.table("train"), data.table("val")
    assert len(val) == 6 and len(train) == 18 and not set(train.ids) & set(val.ids)


def test_isic2018_task3_holdout_moves_images_to_validation(synthetic):
    root = synthetic("isic2018_task3")
    data = make("isic2018_task3", root, split="holdout", val_size=5)  # dds: 999 of 10015 join the 193 released
    train, val, test = (data.table(s) for s in ("train", "val", "test"))
    released = pd.read_csv(root / "ISIC2018_Task3_Validation_GroundTruth.csv").image.tolist()
    assert (len(train), len(val)) == (19, 5 + len(released)) and not set(train.ids) & set(val.ids)
    assert val.ids[5:] == released and len(val.labels) == len(val.paths) == len(val)
    official_test = pd.read_csv(root / "ISIC2018_Task3_Test_GroundTruth.csv").image.tolist()
    assert test.ids == official_test


@pytest.mark.real_data
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


@pytest.mark.real_data
@pytest.mark.skipif(not HAM.is_file(), reason="../shared/data not present")
def test_isic2018_task3_lesion_groupings_agree_with_ham(tmp_path):
    groupings = SHARED_DATA / "isic2018" / "ISIC2018_Task3_Training_LesionGroupings.csv"
    meta = pd.read_csv(HAM)
    one_hot = pd.DataFrame({"image": meta.image_id})
    for name in HAM_COUNTS:
        one_hot[name] = (meta.dx.str.upper() == name).astype(float)
    one_hot.to_csv(tmp_path / "ISIC2018_Task3_Training_GroundTruth.csv", index=False)
    shutil.copy(groupings, tmp_path)
    touch_images(tmp_path / "ISIC2018_Task3_Training_Input", meta.image_id)
    train = ISIC2018Task3DataModule(str(tmp_path), split="weighting").table("pool")
    by_image = meta.set_index("image_id")
    assert train.groups == by_image.loc[train.ids, "lesion_id"].tolist()
    assert train.extra["dx_type"] == by_image.loc[train.ids, "dx_type"].tolist()


@pytest.mark.real_data
@needs_ham_truth
def test_task3_datamodule_reads_the_ham_layout_test_truth(tmp_path):
    shutil.copy(HAM_TEST_TRUTH, tmp_path / "ISIC2018_Task3_Test_GroundTruth.csv")
    (tmp_path / "ISIC2018_Task3_Test_Input").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "ISIC2018_Task3_Test_Input" / "ISIC_0034524.jpg")
    table = ISIC2018Task3DataModule(str(tmp_path), num_workers=0).read_labelled("test")
    assert len(table) == 1512 and table.ids[0] == "ISIC_0034524"
    counts = np.bincount(table.labels, minlength=7)
    assert dict(zip(CATEGORIES, counts.tolist(), strict=True)) == DX_COUNTS
    assert table.groups[:2] == ["HAMTEST_0000000", "HAMTEST_0000001"]
    assert table.extra["score_weight"][table.ids.index("ISIC_0035068")] == 0.0
    assert sum(table.extra["score_weight"]) == 1511


def test_testing_on_the_validation_set_needs_a_cv_fold(tmp_path):
    from datamodules.isic2018 import ISIC2018SegmentationDataModule

    with pytest.raises(ValueError, match="needs cv_fold"):
        ISIC2018SegmentationDataModule(str(tmp_path), test_set="validation")


REAL_2018_TEST = SHARED_DATA / "isic2018" / "ISIC2018_Task3_Test_GroundTruth.csv"


@pytest.mark.real_data
@pytest.mark.skipif(not REAL_2018_TEST.is_file(), reason="../shared/data (real ISIC 2018 task 3 test truth) absent")
def test_isic2018_task3_metadata_from_the_real_ham_layout_test_truth(tmp_path):
    import shutil

    from datamodules import ISIC2018Task3DataModule
    from tests.conftest import touch_images

    shutil.copy(REAL_2018_TEST, tmp_path)
    truth = pd.read_csv(REAL_2018_TEST)
    touch_images(tmp_path / "ISIC2018_Task3_Test_Input", truth.image_id)
    frame = ISIC2018Task3DataModule(str(tmp_path), split="holdout", num_workers=0).metadata("test")
    assert len(frame) == 1512 and list(frame.columns) == ["age_band", "sex", "localization"]
    assert frame.sex.value_counts().to_dict() == truth.sex.fillna("unknown").value_counts().to_dict()
    assert (frame.age_band == "unknown").sum() == truth.age.isna().sum()
