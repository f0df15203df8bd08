"""Every datamodule (``datamodules.DATAMODULES``) reads its synthetic official layout: counts, labels, masks,
batches."""

from __future__ import annotations

import pytest

from datamodules import DATAMODULES
from tests.helpers.datamodules import make

COUNTS = {  # (train, val, test) for 24 synthetic training images
    "isic2016": (18, 6, 12), "isic2017": (24, 8, 12), "isic2018_task1": (24, 8, 12), "isic2018_task2": (24, 8, 12),
    "isic2018_task3": (24, 8, 12), "vitiligo": (24, 8, 12),
}


@pytest.mark.parametrize("name", sorted(DATAMODULES))
def test_synthetic_layout_loads(name, synthetic):
    data = make(name, synthetic(name))
    sizes = tuple(len(data.table(s)) for s in ("train", "val", "test"))
    if name in COUNTS:
        assert sizes == COUNTS[name]
    batch = next(iter(data.train_dataloader()))
    assert batch["image"].shape == (4, 3, 32, 32)
    assert batch["weight"].tolist() == [1.0] * 4
    if name.startswith("isic2018_task") and name != "isic2018_task3":
        channels = 1 if name.endswith("1") else 5
        assert batch["mask"].shape == (4, channels, 32, 32) and set(batch["mask"].unique().tolist()) <= {0.0, 1.0}
    else:
        assert 0 <= batch["label"].min() and batch["label"].max() < data.num_classes
