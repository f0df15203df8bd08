"""The model card's fixed facts (``dermlab/files/model_card.py``); its numbers are tested on an exported run in
``tests/dermlab/commands/test_export.py``."""

from __future__ import annotations

import re

from dermlab.files.model_card import DATA_LICENCES
from tests.conftest import REPO


def test_the_cards_data_licences_are_the_data_pages():
    table = (REPO / "docs" / "datasets" / "index.md").read_text()
    rows = dict(re.findall(r"^\| `([a-z0-9_]+)` \|(?:[^|]*\|){3} ([^|]+?) \|", table, flags=re.M))
    assert rows, "the data set table of docs/datasets/index.md was not found"
    for name, licence in rows.items():
        assert DATA_LICENCES[name] == licence, name
