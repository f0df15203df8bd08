"""``datamodules/isic2024.py`` (SLICE-3D): images from the official HDF5 file, patient-grouped folds, the hold-out,
and bad input."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
import torch

from datamodules import ISIC2024DataModule
from datamodules.synthetic.isic2024 import write_hdf5
from dermlab.errors import DataError
from dermlab.files.hdf5 import HDF5Image
from dermlab.files.io import load_rgb
from tests.helpers.isic2024 import CONTAINER, ids_of


def data(root, **kwargs) -> ISIC2024DataModule:
    return ISIC2024DataModule(str(root), n_folds=3, image_size=32, batch_size=4, num_workers=0, **kwargs)


def test_datamodule_batches_from_two_workers_hold_the_right_pixels(synthetic):
    root = synthetic("isic2024")
    module = data(root)
    module.num_workers = 2
    expected = torch.stack([module.dataset("test")[i]["image"] for i in range(len(module.table("test")))])
    batches = list(module.test_dataloader())
    assert torch.equal(torch.cat([b["image"] for b in batches]), expected)
    assert [i for b in batches for i in b["image_id"]] == module.table("test").ids


def test_patient_grouped_folds_share_no_patient(synthetic):
    root = synthetic("isic2024")
    metadata = pd.read_csv(root / "train-metadata.csv").set_index("isic_id")
    tested = []
    for fold in range(3):
        module = data(root, fold=fold)
        module.setup("fit")
        sides = {split: module.table(split) for split in ("train", "val", "test")}
        patients = {split: set(table.groups) for split, table in sides.items()}
        for table in sides.values():
            assert table.groups == metadata.loc[table.ids, "patient_id"].tolist()  # the groups are the patients
            assert table.labels.tolist() == metadata.loc[table.ids, "target"].tolist()
        assert not patients["train"] & patients["val"] and not patients["train"] & patients["test"]
        assert not patients["val"] & patients["test"]
        assert sorted(sum((t.ids for t in sides.values()), [])) == sorted(metadata.index)
        audit = module.split_audit
        assert not audit.leak and audit.lesion_ids == {"train": True, "val": True, "test": True}
        assert set(audit.shared_lesions.values()) == {0} and audit.fingerprinted == 24
        tested += sides["test"].ids
    assert sorted(tested) == sorted(metadata.index)  # every image tested once over the folds


def test_holdout_predicts_the_released_test_set(synthetic):
    root = synthetic("isic2024")
    module = data(root, split="holdout", val_size=6)
    test = module.table("test")
    assert test.ids == ids_of(root, "test") and set(test.labels) == {-1}
    assert all(p.parent == root / "test-image.hdf5" for p in test.paths)
    assert len(module.table("val")) == 6 and not set(module.table("val").groups) & set(module.table("train").groups)
    frame = module.submission(test.ids, np.tile([[0.25, 0.75]], (len(test), 1)))
    assert list(frame.columns) == ["isic_id", "target"] and frame.target.eq(0.75).all()
    with pytest.raises(DataError, match="has no labels"):
        module.ground_truth("test")
    metadata = module.metadata("test")
    source = pd.read_csv(root / "test-metadata.csv")
    assert metadata.sex.tolist() == source.sex.tolist()
    assert metadata.localization.tolist() == source.anatom_site_general.tolist()


# --- bad input --------------------------------------------------------------------------------------------------
def test_an_id_missing_from_the_hdf5_file_is_named(copy_of, caplog):
    root = copy_of("isic2024")
    ids = ids_of(root)
    victim = ids[5]
    jpegs = root / "train-image" / "image"
    write_hdf5(root / CONTAINER, {i: (jpegs / f"{i}.jpg").read_bytes() for i in ids if i != victim})
    with pytest.raises(DataError, match=f"1 image\\(s\\) listed in .*train-metadata.csv.* are missing .*{victim} in "
                                        f"'.*{CONTAINER}'.*on_bad_image: skip"):
        data(root).setup()
    with pytest.raises(DataError, match=f"'.*{CONTAINER}' holds no image '{victim}'"):
        load_rgb(HDF5Image(root / CONTAINER, victim))
    with caplog.at_level(logging.WARNING):
        pool = data(root, on_bad_image="skip").table("pool")
    assert len(pool) == 23 and victim not in pool.ids and victim in caplog.text


@pytest.mark.parametrize("column", ["isic_id", "target", "patient_id"])
def test_a_missing_column_is_named(copy_of, column):
    root = copy_of("isic2024")
    csv = root / "train-metadata.csv"
    pd.read_csv(csv).drop(columns=column).to_csv(csv, index=False)
    with pytest.raises(DataError, match=f"train-metadata.csv' lacks column\\(s\\) {column}; it has .*age_approx"):
        data(root).table("train")


def test_a_row_without_patient_or_with_a_bad_target_is_named(copy_of):
    root = copy_of("isic2024")
    csv = root / "train-metadata.csv"
    original = pd.read_csv(csv)
    original.assign(patient_id=original.patient_id.where(original.index != 3, "")).to_csv(csv, index=False)
    with pytest.raises(DataError, match=f"row 5 \\({original.isic_id[3]}\\) has no patient_id"):
        data(root).table("train")
    original.assign(target=original.target.where(original.index != 2, 2)).to_csv(csv, index=False)
    with pytest.raises(DataError, match=f"column 'target' row 4 \\({original.isic_id[2]}\\) holds '2'"):
        data(root).table("train")


def test_a_missing_or_damaged_hdf5_file_is_named(copy_of):
    root = copy_of("isic2024")
    (root / CONTAINER).unlink()
    with pytest.raises(DataError, match=f"'.*{CONTAINER}' does not exist.*kaggle.com/competitions/isic-2024"):
        data(root).table("train")
    (root / CONTAINER).write_bytes(b"not an HDF5 file")
    with pytest.raises(DataError, match=f"cannot open '.*{CONTAINER}' as an HDF5 file"):
        data(root).table("train")
