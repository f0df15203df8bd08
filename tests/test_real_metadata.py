"""Datamodules and splits on the real official metadata in ../shared/data (images stand in as empty files)."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from datamodules import Derm7ptDataModule, HAM10000DataModule, ISIC2016DataModule, ISIC2018Task3DataModule
from tests.conftest import HAM_METADATA, SHARED_DATA, derm7pt_release, touch_images

HAM = HAM_METADATA
HAM_COUNTS = {"MEL": 1113, "NV": 6705, "BCC": 514, "AKIEC": 327, "BKL": 1099, "DF": 115, "VASC": 142}
pytestmark = pytest.mark.skipif(not HAM.is_file(), reason="../shared/data not present")


@pytest.mark.parametrize("variant", ["dataverse_8col", "kaggle_7col"])
def test_ham10000_metadata_variants(tmp_path, variant):
    source = HAM if variant == "dataverse_8col" else SHARED_DATA / "ham10000" / "legacy_7col" / "HAM10000_metadata.csv"
    shutil.copy(source, tmp_path)
    touch_images(tmp_path / "HAM10000_images_part_1", pd.read_csv(source).image_id)
    data = HAM10000DataModule(str(tmp_path))
    pool = data.table("pool")
    assert len(pool) == 10015 and len(set(pool.groups)) == 7470
    assert dict(zip(data.class_names, np.bincount(pool.labels).tolist(), strict=True)) == HAM_COUNTS


def test_kfold_is_lesion_grouped_and_stratified(ham_root):
    pool = HAM10000DataModule(str(ham_root)).table("pool")
    overall = np.bincount(pool.labels, minlength=7) / len(pool)
    seen = []
    for fold in range(5):
        data = HAM10000DataModule(str(ham_root), split="kfold", fold=fold, n_folds=5)
        train, val, test = data.table("train"), data.table("val"), data.table("test")
        assert not set(train.groups) & set(test.groups) and not set(val.groups) & set(test.groups)
        assert len(train) + len(val) + len(test) == 10015
        assert np.abs(np.bincount(test.labels, minlength=7) / len(test) - overall).max() < 0.01
        seen += test.ids
    assert sorted(seen) == sorted(pool.ids)  # every image is tested exactly once


def test_patch_four_stratified_lesion_grouped_parts(ham_root):
    """Four parts of ~2,504 images, each with the pool's class shares (±1 percentage point), no lesion in two."""
    parts = []
    for fold in range(3):
        data = HAM10000DataModule(str(ham_root), split="patch", fold=fold)
        train, val, test = (data.table(s) for s in ("train", "val", "test"))
        assert len(set(train.ids) | set(val.ids) | set(test.ids)) == 10015
        assert not (set(train.ids) & set(val.ids)) and not (set(val.ids) & set(test.ids))
        parts.append(val)
    parts.append(test)
    counts = np.array(list(HAM_COUNTS.values()))
    for part in parts:
        share = np.bincount(part.labels, minlength=7) / len(part)
        assert np.abs(share - counts / counts.sum()).max() < 0.01 and abs(len(part) - 10015 / 4) < 100


def test_weighting_two_grouped_80_20_splits(ham_root):
    tests = []
    for fold in (0, 1):
        data = HAM10000DataModule(str(ham_root), split="weighting", fold=fold)
        train, val, test = (data.table(s) for s in ("train", "val", "test"))
        groups = [set(t.groups) for t in (train, val, test)]
        assert not (groups[0] & groups[1]) and not (groups[0] & groups[2]) and not (groups[1] & groups[2])
        assert 0.18 < len(test) / 10015 < 0.22 and len(train) + len(val) + len(test) == 10015
        tests.append(set(test.ids))
    assert tests[0] != tests[1]


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


def test_isic2016_real_ground_truth(tmp_path):
    csv = SHARED_DATA / "isic2016" / "ISBI2016_ISIC_Part3_Training_GroundTruth.csv"
    shutil.copy(csv, tmp_path)
    touch_images(tmp_path / "ISBI2016_ISIC_Part3_Training_Data", pd.read_csv(csv, header=None)[0])
    data = ISIC2016DataModule(str(tmp_path))  # dds split: 649 / 251
    assert len(data.table("train")) == 649 and len(data.table("val")) == 251
    assert np.bincount(data.table("pool").labels).tolist() == [727, 173]


def test_derm7pt_real_meta_matches_the_patch_paper_table(tmp_path):
    release = derm7pt_release(tmp_path)
    data = Derm7ptDataModule(str(tmp_path), merge_valid=True)
    counts = sum(np.bincount(data.table(s).labels, minlength=6) for s in ("train", "test"))
    # Table I of the patch paper: MEL 252, NV 575, BCC 42, BKL 69, DF 20, VASC 29 (no AKIEC).
    assert dict(zip(data.class_names, counts.tolist(), strict=True)) == {"MEL": 252, "NV": 575, "BCC": 42, "BKL": 69,
                                                                         "DF": 20, "VASC": 29}
    unmatched = pd.read_csv(release / "meta" / "meta.csv").diagnosis.isin(["melanosis", "miscellaneous"])
    test_rows = pd.read_csv(release / "meta" / "test_indexes.csv").indexes
    assert len(data.table("test")) == 395 - unmatched.iloc[test_rows].sum()
