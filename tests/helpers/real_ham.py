"""The real HAM10000 metadata (../shared/data) of the patch paper's tests."""

from __future__ import annotations

import pandas as pd

from tests.conftest import SHARED_DATA

SHARED_HAM = SHARED_DATA / "ham10000"


def real_ham():
    return pd.read_csv(SHARED_HAM / "HAM10000_metadata.csv")
