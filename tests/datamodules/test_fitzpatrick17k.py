"""``datamodules/datasets/fitzpatrick17k.py``: the layout (images in ``images/`` or beside the CSV), labels and
Fitzpatrick types read by hand, bad values, absent images (dead links) reported, ``kfold`` and ``external``, and a
HAM10000 model's test on it (non-neoplastic left out, counted)."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from datamodules import Fitzpatrick17kDataModule, HAM10000DataModule
from datamodules.datasets import Fitzpatrick17kDataset, Fitzpatrick17kReader
from dermlab.errors import DataError

HEADER = ("md5hash,fitzpatrick_scale,fitzpatrick_centaur,label,nine_partition_label,three_partition_label,qc,url,"
          "url_alphanum")
HASHES = ["0" * 31 + str(k) for k in range(4)]
ROWS = [f"{HASHES[0]},1,2,melanoma,malignant melanoma,malignant,,https://x.invalid/a.jpg,httpsxinvalidajpg",
        f"{HASHES[1]},4,4,psoriasis,inflammatory,non-neoplastic,1 Diagnostic,https://x.invalid/b.jpg,httpsxinvalidbjpg",
        f"{HASHES[2]},6,5,dermatofibroma,benign dermal,benign,,https://x.invalid/c.jpg,httpsxinvalidcjpg",
        f"{HASHES[3]},-1,-1,basal cell carcinoma,malignant epidermal,malignant,3 Wrongly labelled,"
        "https://x.invalid/d.jpg,httpsxinvaliddjpg"]


def hand_written(folder, rows=ROWS, images="images"):
    """``folder/fitzpatrick17k.csv`` of ``rows`` and an 8 px JPEG per row in ``folder/images`` (``.``: beside it)."""
    (folder / images).mkdir(parents=True, exist_ok=True)
    (folder / "fitzpatrick17k.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    for row in rows:
        Image.new("RGB", (8, 8), (180, 130, 100)).save(folder / images / f"{row.split(',')[0]}.jpg")
    return folder


@pytest.mark.parametrize("images", ["images", "."])
def test_a_hand_written_csv_reads_labels_types_and_extras(tmp_path, images):
    root = hand_written(tmp_path, images=images)
    reader = Fitzpatrick17kReader(root, split="external")
    test = reader.table("test")
    assert test.ids == HASHES and [p.parent for p in test.paths] == [root / images] * 4
    assert reader.class_names == ("benign", "malignant", "non-neoplastic") and test.labels.tolist() == [1, 2, 0, 1]
    assert reader.metadata("test").to_dict("list") == {"fitzpatrick": ["I", "IV", "VI", "unknown"],
                                                       "fitzpatrick_group": ["I-II", "III-IV", "V-VI", "unknown"]}
    frame = test.frame(reader.class_names)  # what splits/test.csv holds
    assert frame.label.tolist() == ["malignant", "non-neoplastic", "benign", "malignant"]
    assert frame.fitzpatrick_centaur.tolist() == ["2", "4", "5", "-1"]
    assert frame.qc.tolist() == ["", "1 Diagnostic", "", "3 Wrongly labelled"]
    assert frame.condition.tolist() == ["melanoma", "psoriasis", "dermatofibroma", "basal cell carcinoma"]
    assert frame.nine_partition_label.tolist()[1] == "inflammatory" and "url" in frame.columns
    with pytest.raises(DataError, match="split: external: every image is a test image and none trains"):
        reader.table("train")


@pytest.mark.parametrize(("column", "value", "expected"), [
    ("fitzpatrick_scale", "7", "expected 1-6 or -1 (not rated)"),
    ("fitzpatrick_centaur", "III-IV", "expected 1-6 or -1 (not rated)"),
    ("three_partition_label", "cancer", "expected benign or malignant or non-neoplastic"),
])
def test_bad_values_are_refused_naming_file_row_and_value(tmp_path, column, value, expected):
    cells = ROWS[2].split(",")
    cells[HEADER.split(",").index(column)] = value
    root = hand_written(tmp_path, [*ROWS[:2], ",".join(cells), ROWS[3]])
    with pytest.raises(DataError) as error:
        Fitzpatrick17kReader(root).table("test")
    assert f"'{root / 'fitzpatrick17k.csv'}' row 4 ({HASHES[2]}): {column} is '{value}'; {expected}" in str(
        error.value)


def test_the_twin_splits_into_stratified_folds_keeping_every_image_once(synthetic):
    root = synthetic("fitzpatrick17k")
    truth = pd.read_csv(root / "fitzpatrick17k.csv", dtype=str, keep_default_na=False)
    assert ",".join(truth.columns) == HEADER
    assert truth.md5hash.str.fullmatch("[0-9a-f]{32}").all() and set(truth.fitzpatrick_scale) == {
        "1", "2", "3", "4", "5", "6", "-1"}
    assert (truth.url == "https://example.invalid/" + truth.md5hash + ".jpg").all()
    data = Fitzpatrick17kDataModule(str(root), image_size=32, batch_size=4, num_workers=0)
    parts = {s: data.table(s) for s in ("train", "val", "test")}
    ids = [i for part in parts.values() for i in part.ids]
    assert sorted(ids) == sorted(truth.md5hash) and len(set(ids)) == len(truth)
    for part in (parts["val"], parts["test"]):  # 5 stratified folds of >= 5 images per class: each class tested
        assert set(part.labels.tolist()) == {0, 1, 2}
    metadata = data.metadata("test")
    by_hash = truth.set_index("md5hash").fitzpatrick_scale
    assert metadata.index.tolist() == parts["test"].ids
    roman = {"1": "I", "2": "II", "3": "III", "4": "IV", "5": "V", "6": "VI", "-1": "unknown"}
    assert metadata.fitzpatrick.tolist() == [roman[by_hash[i]] for i in parts["test"].ids]
    data.setup("fit")
    assert next(iter(data.train_dataloader()))["image"].shape == (4, 3, 32, 32)
    assert len(Fitzpatrick17kDataset(root, "test", scheme="external", image_size=32)) == len(truth)


def dead_links(root, tmp_path, count=2):
    """A copy of the twin without ``count`` images of its default test fold; returns (copy, the files removed)."""
    copy = tmp_path / "fitzpatrick17k"
    shutil.copytree(root, copy)
    gone = [f"{i}.jpg" for i in Fitzpatrick17kReader(copy).table("test").ids[:count]]
    for name in gone:
        (copy / "images" / name).unlink()
    return copy, gone


def test_absent_images_stop_the_default_naming_the_count_the_files_and_skip(synthetic, tmp_path):
    copy, gone = dead_links(synthetic("fitzpatrick17k"), tmp_path)
    with pytest.raises(DataError) as error:
        Fitzpatrick17kDataModule(str(copy), num_workers=0).setup("test")
    text = str(error.value)
    assert f"2 image(s) listed in '{copy / 'fitzpatrick17k.csv'}' are missing (of 24 listed;" in text
    assert f"e.g. {gone[0]}, {gone[1]} in '{copy / 'images'}'" in text
    assert "set on_bad_image: skip to go on with the 22 present ones" in text
    assert "Fitzpatrick17k ships no images: each is fetched from its row's url, and some links are dead" in text


def test_absent_images_are_left_out_with_one_warning_under_skip(synthetic, tmp_path, caplog):
    copy, gone = dead_links(synthetic("fitzpatrick17k"), tmp_path)
    data = Fitzpatrick17kDataModule(str(copy), num_workers=0, on_bad_image="skip")
    with caplog.at_level(logging.WARNING):
        sizes = [len(data.table(s)) for s in ("train", "val", "test")]
    assert sum(sizes) == 22 and not {i + ".jpg" for i in data.table("test").ids} & set(gone)
    warnings = [r.getMessage() for r in caplog.records if "on_bad_image=skip" in r.getMessage()]
    assert len(warnings) == 1
    assert f"left out 2 of 24 images listed in '{copy / 'fitzpatrick17k.csv'}', as they are missing" in warnings[0]
    assert "some links are dead" in warnings[0] and "going on with the 22 present ones" in warnings[0]


def test_a_ham10000_model_is_scored_on_benign_vs_malignant_leaving_non_neoplastic_out(synthetic):
    root = synthetic("fitzpatrick17k")
    target = Fitzpatrick17kDataModule(str(root), split="external")
    ham = HAM10000DataModule(str(synthetic("ham10000")), split="kfold", n_folds=3, image_size=32, num_workers=0,
                             test_on=target)
    assert ham.test_mapping.name == "isic2018 → fitzpatrick17k" and ham.test_mapping.classes == ("benign", "malignant")
    ham.setup("test")
    truth = pd.read_csv(root / "fitzpatrick17k.csv")
    kept = truth[truth.three_partition_label != "non-neoplastic"]
    test = ham.table("test")
    assert test.ids == kept.md5hash.tolist()
    assert test.labels.tolist() == (kept.three_partition_label == "malignant").astype(int).tolist()
    assert ham.cross_test.left_out == {"non-neoplastic": int((truth.three_partition_label == "non-neoplastic").sum())}
    assert np.isin(ham.split_source("test").metadata("test").fitzpatrick_group, ["I-II", "III-IV", "V-VI",
                                                                                 "unknown"]).all()
