"""``datamodules/audit.py``: the split audit finds what puts a test image, or its lesion, on the training side
(planted copies in the tiny synthetic sets) and the run folder holds its report."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from datamodules import ISIC2017DataModule
from datamodules.audit import audit_splits
from datamodules.datasets.table import ImageTable
from dermlab.errors import DataError
from tests.conftest import tiny_args
from tests.helpers.leakage import _plant


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
