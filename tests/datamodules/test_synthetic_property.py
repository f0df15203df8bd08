"""Every synthetic twin (``datamodules/synthetic``) at its smallest accepted size and a little above sets up its
datamodule, for several seeds."""

from __future__ import annotations

import logging

import pandas as pd
import pytest

from datamodules import DATAMODULES
from datamodules.synthetic import SIZES, WRITERS, write_synthetic
from dermlab.errors import DataError
from tests.helpers.synthetic import SIDE


def sets_up(name: str, root, n: int) -> None:
    """The datamodule of ``name`` on the twin at ``root``: fit and test set up, one batch of each split."""
    cls, fixed = DATAMODULES[name]
    options = {"val_size": max(1, n // 4)} if name == "isic2016" else {}  # its default, 251, needs n >= 252
    data = cls(str(root), image_size=SIDE, batch_size=2, num_workers=0, **fixed, **options)
    if getattr(data, "scheme", None) == "external":  # an evaluation set (DDI): fit is refused, every image tests
        with pytest.raises(DataError, match="split: external"):
            data.setup("fit")
        assert len(data.table("test")) == n and set(data.table("test").labels.tolist()) == set(range(data.num_classes))
    else:
        data.setup("fit")
        for loader in (data.train_dataloader(), data.val_dataloader()):
            assert next(iter(loader))["image"].shape[1:] == (3, SIDE, SIDE)
    data.setup("test")
    assert next(iter(data.test_dataloader()))["image"].shape[1:] == (3, SIDE, SIDE)


@pytest.fixture(autouse=True)
def quiet(caplog):
    caplog.set_level(logging.ERROR)


def test_every_data_set_has_a_smallest_n_and_says_what_n_counts():
    assert set(SIZES) == set(WRITERS)
    assert all(size.minimum >= 1 and size.counts for size in SIZES.values())


@pytest.mark.parametrize("name", sorted(WRITERS))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_smallest_accepted_twin_sets_up(name, seed, tmp_path):
    n = SIZES[name].minimum
    write_synthetic(name, tmp_path, n=n, size=SIDE, seed=seed)
    sets_up(name, tmp_path, n)


@pytest.mark.parametrize("name", sorted(WRITERS))
@pytest.mark.parametrize("more", [1, 7])
def test_a_few_larger_twins_set_up(name, more, tmp_path):
    n = SIZES[name].minimum + more
    write_synthetic(name, tmp_path, n=n, size=SIDE, seed=0)
    sets_up(name, tmp_path, n)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(WRITERS))
@pytest.mark.parametrize("more", [0, 1, 2, 7, 30])
@pytest.mark.parametrize("seed", range(3, 9))
def test_larger_twins_set_up_for_more_seeds(name, more, seed, tmp_path):
    n = SIZES[name].minimum + more
    write_synthetic(name, tmp_path, n=n, size=SIDE, seed=seed)
    sets_up(name, tmp_path, n)


@pytest.mark.parametrize(("n", "seed"), [(40, 1), (40, 0), (21, 3),
                                         *(pytest.param(200, s, marks=pytest.mark.slow) for s in range(3))])
def test_isic2020_duplicates_list_names_each_image_once_and_the_datamodule_reads_it(n, seed, tmp_path):
    """A copy was once drawn from an image that already had one (``image_name_1`` twice), which the reader
    refuses."""
    write_synthetic("isic2020", tmp_path, n=n, size=SIDE, seed=seed)
    pairs = pd.read_csv(tmp_path / "ISIC_2020_Training_Duplicates.csv")
    named = [*pairs.image_name_1, *pairs.image_name_2]
    assert len(pairs) >= 1 and len(named) == len(set(named))
    sets_up("isic2020", tmp_path, n)


@pytest.mark.parametrize("seed", range(8))
def test_derm7pt_parts_each_keep_an_image_at_the_smallest_n(seed, tmp_path):
    """derm7pt's n counts all images; melanosis and miscellaneous are left out by the datamodule, so a part holding
    only those would be empty."""
    n = SIZES["derm7pt"].minimum
    counts = write_synthetic("derm7pt", tmp_path, n=n, size=SIDE, seed=seed)
    assert sum(counts.values()) == n
    cls, fixed = DATAMODULES["derm7pt"]
    data = cls(str(tmp_path), image_size=SIDE, batch_size=2, num_workers=0, **fixed)
    assert all(len(data.table(split)) >= 1 for split in ("train", "val", "test"))
