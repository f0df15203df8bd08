"""``datamodules/splits.py``: lesion-grouped hold-outs and folds by hand, and the patch paper's 4-part protocol on
the real HAM10000 labels."""

from __future__ import annotations

import numpy as np
import pytest

from datamodules import splits
from datamodules.datasets.pooled import HAM_CLASSES
from datamodules.splits import stratified_parts
from dermlab.errors import DataError
from tests.helpers.real_ham import real_ham


# --- the splitters by hand ------------------------------------------------------------------------------------
def test_grouped_holdout_moves_whole_lesions_until_the_count():
    groups = ["a", "a", "b", "c", "c", "c", "d", "e"]
    split = splits.random_holdout(len(groups), 3, seed=0, groups=groups)
    val_lesions = {groups[i] for i in split["val"]}
    assert len(split["val"]) == 3 and not val_lesions & {groups[i] for i in split["train"]}
    assert sorted(split["val"].tolist() + split["train"].tolist()) == list(range(8))
    ungrouped = splits.random_holdout(8, 3, seed=0)
    assert len(ungrouped["val"]) == 3


@pytest.mark.parametrize("n_val", [0, 8, 251])
def test_a_holdout_that_cannot_fit_names_the_setting_and_its_range(n_val):
    with pytest.raises(DataError, match=rf"cannot move {n_val} of 8 training images to validation: set "
                                        r"--data\.init_args\.val_size .* between 1 and 7$"):
        splits.random_holdout(8, n_val, seed=0)


def test_grouped_kfold_needs_three_folds_and_separates_val_from_test():
    labels = np.array([0, 1] * 12)
    groups = [f"L{i // 2}" for i in range(24)]
    with pytest.raises(DataError, match="at least 3"):
        splits.grouped_kfold(labels, groups, 0, 2, seed=0)
    split = splits.grouped_kfold(labels, groups, 2, 4, seed=0)
    assert not set(split["val"]) & set(split["test"]) and len(split["train"]) + len(split["val"]) + len(
        split["test"]) == 24


@pytest.mark.real_data
def test_four_part_protocol_never_puts_an_image_in_two_parts():
    labels = np.array([HAM_CLASSES.index(d.upper()) for d in real_ham().dx])
    folds = [stratified_parts(labels, fold, seed=0) for fold in range(3)]
    test = folds[0]["test"]
    for split in folds:
        assert np.array_equal(split["test"], test)  # one test part for all three folds
        assert not set(split["train"]) & set(split["val"]) and not (set(split["train"]) | set(split["val"])) & set(test)
        assert len(split["train"]) + len(split["val"]) + len(test) == len(labels)
        assert abs(len(split["val"]) - len(labels) / 4) <= 7
    assert not set(folds[0]["val"]) & set(folds[1]["val"]) and not set(folds[1]["val"]) & set(folds[2]["val"])
    part_share = np.bincount(labels[test], minlength=7) / len(test)
    assert part_share == pytest.approx(np.bincount(labels, minlength=7) / len(labels), abs=0.002)  # stratified
