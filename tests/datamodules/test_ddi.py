"""``datamodules/datasets/ddi.py``: DDI's layout (images beside the CSV or in ``images/``, root one folder up), its
labels and skin-tone groups read by hand, the older malignancy column, bad values, ``split: external`` and ``kfold``,
and a HAM10000 model's test on it."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from datamodules import DDIDataModule, HAM10000DataModule
from datamodules.cross import CrossTest
from datamodules.datasets import DDIDataset, DDIReader
from dermlab.errors import DataError

HEADER = ",DDI_ID,DDI_file,skin_tone,malignant,disease"
ROWS = ["0,1,000001.png,12,True,melanoma-in-situ", "1,2,000002.png,34,False,verruca-vulgaris",
        "2,3,000003.png,56,False,seborrheic-keratosis", "3,4,000004.png,56,True,basal-cell-carcinoma"]


def hand_written(folder, rows=ROWS, header=HEADER, images="."):
    """``folder/ddi_metadata.csv`` of ``rows`` and an 8 px PNG per row in ``folder/images`` (``.``: beside it)."""
    (folder / images).mkdir(parents=True, exist_ok=True)
    (folder / "ddi_metadata.csv").write_text("\n".join([header, *rows]) + "\n")
    for row in rows:
        Image.new("RGB", (8, 8), (200, 150, 120)).save(folder / images / row.split(",")[2])
    return folder


@pytest.mark.parametrize("images", [".", "images"])
def test_a_hand_written_csv_reads_labels_groups_and_diseases(tmp_path, images):
    root = hand_written(tmp_path / "ddi", images=images)
    reader = DDIReader(root)
    test = reader.table("test")
    assert test.ids == ["000001", "000002", "000003", "000004"]
    assert test.labels.tolist() == [1, 0, 0, 1] and reader.class_names == ("benign", "malignant")
    assert [p.parent for p in test.paths] == [root / images] * 4 and all(p.is_file() for p in test.paths)
    assert reader.metadata("test").to_dict("list") == {"fitzpatrick_group": ["I-II", "III-IV", "V-VI", "V-VI"]}
    assert reader.metadata("test").index.tolist() == test.ids
    frame = test.frame(reader.class_names)  # what splits/test.csv holds
    assert frame.disease.tolist() == ["melanoma-in-situ", "verruca-vulgaris", "seborrheic-keratosis",
                                      "basal-cell-carcinoma"]
    assert frame.label.tolist() == ["malignant", "benign", "benign", "malignant"]
    assert reader.patient_metadata("test").columns.tolist() == []  # no age, sex or site in DDI


def test_root_may_be_the_folder_above_the_download(tmp_path):
    hand_written(tmp_path / "ddidiversedermatologyimages", images="images")
    assert DDIReader(tmp_path).table("test").ids == DDIReader(tmp_path / "ddidiversedermatologyimages").table(
        "test").ids


def test_the_older_malignancy_column_and_re_saved_codes(tmp_path):
    rows = [r.replace("True", "1").replace("False", "0").replace(",12,", ",12.0,") for r in ROWS]
    root = hand_written(tmp_path, rows, HEADER.replace("malignant", "malignancy(malig=1)"))
    reader = DDIReader(root)
    assert reader.table("test").labels.tolist() == [1, 0, 0, 1]
    assert reader.metadata("test").fitzpatrick_group.tolist() == ["I-II", "III-IV", "V-VI", "V-VI"]


@pytest.mark.parametrize(("row", "said"), [
    ("1,2,000002.png,78,False,verruca-vulgaris", "row 3 (000002.png): skin_tone is '78'; expected 12, 34 or 56"),
    ("1,2,000002.png,,False,verruca-vulgaris", "row 3 (000002.png): skin_tone is empty; expected 12, 34 or 56"),
    ("1,2,000002.png,34,maybe,verruca-vulgaris", "row 3 (000002.png): malignant is 'maybe'; expected True or False"),
])
def test_bad_values_are_refused_naming_file_row_and_value(tmp_path, row, said):
    root = hand_written(tmp_path, [ROWS[0], row, *ROWS[2:]])
    with pytest.raises(DataError) as error:
        DDIReader(root).table("test")
    assert f"'{root / 'ddi_metadata.csv'}' {said}" in str(error.value)


def test_a_csv_without_a_malignancy_column_names_both(tmp_path):
    root = hand_written(tmp_path, [r.rsplit(",", 2)[0] + ",x" for r in ROWS], ",DDI_ID,DDI_file,skin_tone,disease")
    with pytest.raises(DataError, match=r"has neither column malignant nor malignancy\(malig=1\)"):
        DDIReader(root).table("test")


def test_the_twin_is_an_external_test_set(synthetic):
    root = synthetic("ddi")
    truth = pd.read_csv(root / "ddi_metadata.csv", index_col=0)
    assert truth.columns.tolist() == ["DDI_ID", "DDI_file", "skin_tone", "malignant", "disease"]
    assert set(truth.skin_tone) == {12, 34, 56} and truth.malignant.dtype == bool
    data = DDIDataModule(str(root), image_size=32, batch_size=4, num_workers=0)
    test = data.table("test")
    assert test.ids == [f"{i:06d}" for i in truth.DDI_ID] and test.labels.tolist() == truth.malignant.astype(
        int).tolist()
    assert len(data.table("val")) == 0
    with pytest.raises(DataError, match="split: external: every image is a test image and none trains"):
        data.setup("fit")
    data.setup("test")
    batch = next(iter(data.test_dataloader()))
    assert batch["image"].shape == (4, 3, 32, 32)
    with pytest.raises(DataError, match="none trains"):
        DDIDataset(root, "train")
    assert len(DDIDataset(root, "test", image_size=32)) == len(truth)


def test_kfold_keeps_every_image_once_and_other_schemes_are_refused(synthetic):
    root = synthetic("ddi")
    parts = {s: DDIReader(root, split="kfold", n_folds=3).table(s) for s in ("train", "val", "test")}
    ids = [i for part in parts.values() for i in part.ids]
    assert len(ids) == len(set(ids)) == 24
    assert abs(int(parts["val"].labels.sum()) - int(parts["test"].labels.sum())) <= 1  # stratified folds
    with pytest.raises(DataError, match="split 'weighting' is not available for DDIReader"):
        DDIReader(root, split="weighting").table("test")


def test_a_ham10000_model_is_scored_benign_vs_malignant_on_ddi(synthetic):
    ddi = DDIDataModule(str(synthetic("ddi")))
    ham = HAM10000DataModule(str(synthetic("ham10000")), split="kfold", n_folds=3, image_size=32, num_workers=0,
                             test_on=ddi)
    assert ham.test_mapping.name == "isic2018 → ddi"
    assert ham.test_mapping.rows() == [("benign", "NV + BKL + DF + VASC → benign"),
                                       ("malignant", "MEL + BCC + AKIEC → malignant")]
    ham.setup("test")
    test = ham.table("test")
    assert test.ids == ddi.table("test").ids and np.array_equal(test.labels, ddi.table("test").labels)
    assert ham.cross_test.left_out == {} and ham.split_class_names("test") == ("benign", "malignant")
    assert ham.split_source("test").metadata("test").fitzpatrick_group.tolist() == [
        {"12": "I-II", "34": "III-IV", "56": "V-VI"}[t] for t in ddi.table("test").extra["skin_tone"]]
    assert CrossTest(ham, ddi).describe(len(test))["mapping"]["target_left_out"] == []


def test_a_wrong_folder_is_named_before_the_external_refusal(synthetic, tmp_path):
    shutil.copytree(synthetic("ham10000"), tmp_path / "ham")
    with pytest.raises(DataError) as error:
        DDIDataModule(str(tmp_path / "ham"), num_workers=0).setup("fit")
    assert "ddi_metadata.csv' does not exist" in str(error.value) and "its config is ham10000" in str(error.value)


def test_prepare_caches_every_image_of_the_external_test_set(synthetic, tmp_path):
    from datamodules.cache import prepare_cache

    assert prepare_cache("ddi", str(synthetic("ddi")), 16, str(tmp_path / "cache"), workers=1) == {"val": 0, "test": 24}
