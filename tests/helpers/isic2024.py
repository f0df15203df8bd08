"""The synthetic ISIC 2024 twin's files."""

from __future__ import annotations

import pandas as pd

CONTAINER = "train-image.hdf5"


def ids_of(root, part="train") -> list[str]:
    return pd.read_csv(root / f"{part}-metadata.csv").isic_id.tolist()
