"""``datamodules/derm7pt.py``: the six classes, the merged validation part and the real meta files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from datamodules import Derm7ptDataModule
from tests.conftest import derm7pt_release
from tests.helpers.datamodules import make
from tests.helpers.real_metadata import HAM


def test_derm7pt_maps_to_six_classes_and_merges_valid(synthetic):
    root = synthetic("derm7pt")
    plain, merged = make("derm7pt", root), make("derm7pt", root, merge_valid=True)
    assert plain.num_classes == 6 and "AKIEC" not in plain.class_names
    assert len(merged.table("train")) == len(plain.table("train")) + len(plain.table("val"))
    assert len(merged.table("val")) == 0 and merged.val_dataloader() == []  # nothing is chosen on the test cases
    assert merged.table("test").ids == plain.table("test").ids


@pytest.mark.real_data
@pytest.mark.skipif(not HAM.is_file(), reason="../shared/data not present")
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
