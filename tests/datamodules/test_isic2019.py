"""``datamodules/isic2019.py``: the real truth with its published counts, the synthetic twin's lesion-grouped folds
and what the datamodule refuses."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from datamodules import ISIC2019DataModule
from dermlab.challenge.truth import read_truth
from dermlab.errors import DataError
from tests.helpers.isic2019_2020 import TRUTH_2019, needs_2019, one_image

COUNTS_2019 = {"MEL": 4522, "NV": 12875, "BCC": 3323, "AK": 867, "BKL": 2624, "DF": 239, "VASC": 253, "SCC": 628}


# --- the real truth files -----------------------------------------------------------------------------------------

@pytest.mark.real_data
@needs_2019
def test_isic2019_real_truth_parses_with_the_published_class_counts(tmp_path):
    truth = read_truth(TRUTH_2019)
    assert truth.layout == "isic2019" and len(truth.labels) == 25331
    assert truth.labels.sum().astype(int).to_dict() == {**COUNTS_2019, "UNK": 0}
    assert truth.labels.index.str.endswith("_downsampled").sum() == 2074
    shutil.copy(TRUTH_2019, tmp_path)
    one_image(tmp_path / "ISIC_2019_Training_Input")
    data = ISIC2019DataModule(str(tmp_path))
    pool = data.raw_table("pool")
    assert data.class_names == tuple(COUNTS_2019) and data.num_classes == 8
    assert dict(zip(data.class_names, np.bincount(pool.labels).tolist(), strict=True)) == COUNTS_2019
    assert pool.paths[pool.ids.index("ISIC_0000017_downsampled")].name == "ISIC_0000017_downsampled.jpg"
    assert pool.groups is None  # the released copy here has no metadata CSV: the folds refuse to run without it
    with pytest.raises(DataError, match="ISIC_2019_Training_Metadata.csv' .*is missing"):
        data.raw_table("train")


# --- the synthetic twins ----------------------------------------------------------------------------------------

def test_isic2019_twin_official_layout_and_lesion_grouped_folds(synthetic):
    root = synthetic("isic2019")
    raw = (root / "ISIC_2019_Training_GroundTruth.csv").read_bytes()
    assert raw.startswith(b"image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK\r\n") and b",1.0," in raw
    truth = pd.read_csv(root / "ISIC_2019_Training_GroundTruth.csv")
    metadata = pd.read_csv(root / "ISIC_2019_Training_Metadata.csv", dtype=str)
    assert list(metadata.columns) == ["image", "age_approx", "anatom_site_general", "lesion_id", "sex"]
    assert truth.UNK.eq(0).all() and metadata.image.tolist() == truth.image.tolist()
    downsampled = truth.image.str.endswith("_downsampled")
    assert downsampled.sum() == 3  # ids 1, 11 and 21 of 24
    assert all((root / "ISIC_2019_Training_Input" / f"{i}.jpg").is_file() for i in truth.image)
    assert metadata.lesion_id[downsampled].isna().all() and metadata.lesion_id.dropna().duplicated().any()
    data = ISIC2019DataModule(str(root), n_folds=3, image_size=32, num_workers=0)
    tables = [data.table(s) for s in ("train", "val", "test")]
    assert sorted(i for t in tables for i in t.ids) == sorted(truth.image)
    lesions = [{g for g in t.groups if g} for t in tables]
    assert not lesions[0] & lesions[1] and not lesions[0] & lesions[2] and not lesions[1] & lesions[2]
    pool = data.table("pool")
    assert [data.class_names[k] for k in pool.labels] == truth.iloc[:, 1:9].idxmax(axis=1).tolist()
    assert list(data.metadata("test").columns) == ["sex", "age_band", "localization"]


# --- bad input ----------------------------------------------------------------------------------------------------

def test_isic2019_refuses_unk_rows_missing_metadata_rows_and_schemes_without_a_test_truth(copy_of):
    root = copy_of("isic2019")
    csv = root / "ISIC_2019_Training_GroundTruth.csv"
    truth = pd.read_csv(csv, dtype=str)
    with pytest.raises(DataError, match="has no official test set"):
        ISIC2019DataModule(str(root), split="holdout").table("test")
    metadata = pd.read_csv(root / "ISIC_2019_Training_Metadata.csv", dtype=str)
    metadata.drop(index=5).to_csv(root / "ISIC_2019_Training_Metadata.csv", index=False)
    with pytest.raises(DataError, match=rf"no row for 1 image\(s\) .*e\.g\. {truth.image[5]}"):
        ISIC2019DataModule(str(root)).table("pool")
    truth.iloc[3, 1:] = ["0.0"] * 8 + ["1.0"]
    truth.to_csv(csv, index=False)
    with pytest.raises(DataError, match=rf"row 5 \({truth.image[3]}\) is marked UNK"):
        ISIC2019DataModule(str(root)).table("pool")
