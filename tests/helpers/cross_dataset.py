"""Names shared by the cross-dataset tests."""

from __future__ import annotations

from datamodules.taxonomies import TAXONOMIES
from tests.conftest import REPO

HAM = TAXONOMIES["isic2018"]

EXPERIMENTS = REPO / "experiments"
