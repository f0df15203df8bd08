"""``datamodules/isic2020.py``: patient-grouped folds and the duplicates list, on the real truth and the synthetic
twin."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from datamodules import ISIC2020DataModule
from datamodules.audit import read_duplicate_pairs
from datamodules.datasets.isic2020 import copies_to_drop
from dermlab.challenge.truth import read_truth
from dermlab.errors import DataError
from tests.helpers.isic2019_2020 import DUPLICATES_2020, TRUTH_2020, needs_2020, one_image

# --- copies_to_drop: one of each group of copies stays ----------------------------------------------------------

def test_copies_to_drop_keeps_the_first_listed_image_of_each_group():
    ids = ["a", "b", "c", "d", "e", "f"]
    # b = a and c = b chain into one group {a, b, c}; e = d; x is not in the table; f has no copy
    pairs = [("b", "a"), ("c", "b"), ("e", "d"), ("x", "a")]
    assert copies_to_drop(ids, pairs) == [1, 2, 4]
    assert copies_to_drop(ids, [("c", "b"), ("b", "a")]) == [1, 2]  # the order of the pairs does not matter
    assert copies_to_drop(ids, []) == []


@pytest.mark.real_data
@needs_2020
def test_isic2020_real_truth_patient_folds_and_duplicates(tmp_path):
    truth = read_truth(TRUTH_2020)
    assert truth.layout == "isic2020" and len(truth.labels) == 33126
    assert int(truth.labels.target.sum()) == 584 and len(set(truth.groups)) == 2056
    pairs = read_duplicate_pairs(DUPLICATES_2020)
    assert len(pairs) == 425
    for name in (TRUTH_2020, DUPLICATES_2020):
        shutil.copy(name, tmp_path)
    one_image(tmp_path / "train")
    data = ISIC2020DataModule(str(tmp_path), audit_pixels=False)
    pool = data.raw_table("pool")
    left_out = set(truth.labels.index) - set(pool.ids)
    assert len(pool) == 33126 - 425 and len(left_out) == 425  # no image is in two pairs: one of each pair goes
    kept = set(pool.ids)
    assert all((a in kept) != (b in kept) for a, b in pairs) and not {b for _, b in pairs} - left_out
    assert int(pool.labels.sum()) == 581  # 3 of the pairs are melanoma images
    tables = {split: data.raw_table(split) for split in ("train", "val", "test")}
    patients = {split: set(t.groups) for split, t in tables.items()}
    assert not patients["train"] & patients["val"] and not patients["train"] & patients["test"]
    assert not patients["val"] & patients["test"]
    assert sum(len(t) for t in tables.values()) == len(pool)
    assert sum(int(t.labels.sum()) for t in tables.values()) == int(pool.labels.sum())
    audit = data.audit(screened=False)
    assert not audit.leak and audit.known_duplicates and audit.duplicate_images == 0
    # keeping both images of each pair: the audit applies the list, and no pair straddles two splits (each pair's
    # images belong to one patient, which the folds keep on one side)
    everything = ISIC2020DataModule(str(tmp_path), audit_pixels=False, drop_duplicates=False)
    assert len(everything.raw_table("pool")) == 33126
    audit = everything.audit(screened=False)
    assert not audit.leak and audit.duplicate_images == 0 and sum(audit.splits[s] for s in tables) == 33126


def test_isic2020_twin_lists_its_copies_and_the_datamodule_drops_them(synthetic):
    root = synthetic("isic2020")
    truth = pd.read_csv(root / "ISIC_2020_Training_GroundTruth.csv", dtype=str).set_index("image_name")
    pairs = read_duplicate_pairs(root / "ISIC_2020_Training_Duplicates.csv")
    assert pairs and truth.target.eq("1").sum() >= 3
    for a, b in pairs:  # byte-identical copies of the same patient's image
        assert (root / "train" / f"{a}.jpg").read_bytes() == (root / "train" / f"{b}.jpg").read_bytes()
        assert truth.patient_id[a] == truth.patient_id[b] and truth.target[a] == truth.target[b]
    data = ISIC2020DataModule(str(root), n_folds=3, image_size=32, num_workers=0)
    kept = data.table("pool").ids
    assert len(kept) == 24 - len({b for _, b in pairs}) and not {b for _, b in pairs} & set(kept)
    patients = [set(data.table(s).groups) for s in ("train", "val", "test")]
    assert not patients[0] & patients[1] and not patients[0] & patients[2] and not patients[1] & patients[2]
    everything = ISIC2020DataModule(str(root), n_folds=3, drop_duplicates=False).table("pool")
    assert len(everything) == 24 and data.class_names == ("benign", "melanoma")


def test_isic2020_refuses_contradicting_rows_empty_patients_and_a_missing_duplicates_list(copy_of):
    root = copy_of("isic2020")
    csv = root / "ISIC_2020_Training_GroundTruth.csv"
    truth = pd.read_csv(csv, dtype=str)
    (root / "ISIC_2020_Training_Duplicates.csv").unlink()
    with pytest.raises(DataError, match="drop_duplicates needs .*ISIC_2020_Training_Duplicates.csv"):
        ISIC2020DataModule(str(root)).table("pool")
    assert len(ISIC2020DataModule(str(root), drop_duplicates=False).table("pool")) == 24
    broken = truth.copy()
    broken.loc[2, "patient_id"] = ""
    broken.to_csv(csv, index=False)
    with pytest.raises(DataError, match=rf"row 4 \({truth.image_name[2]}\) has no patient_id"):
        ISIC2020DataModule(str(root), drop_duplicates=False).table("pool")
    broken = truth.copy()
    row = int(np.flatnonzero(truth.target.eq("0"))[0])
    broken.loc[row, "target"] = "1"
    broken.to_csv(csv, index=False)
    with pytest.raises(DataError, match=rf"row {row + 2} \({truth.image_name[row]}\) has target 1 but "
                                        "benign_malignant 'benign'"):
        ISIC2020DataModule(str(root), drop_duplicates=False).table("pool")
