"""The real HAM10000 metadata (../shared/data) and planted copies for the split-audit tests."""

from __future__ import annotations

import pytest

from tests.conftest import HAM_METADATA

HAM = HAM_METADATA

needs_shared = pytest.mark.skipif(not HAM.is_file(), reason="../shared/data (real HAM10000 metadata) not present")


def _plant(root, source_id: str, target_id: str, folder_from: str, folder_to: str, comment: bool = False):
    """Overwrite image ``target_id`` with the pixels of ``source_id`` (a JPEG comment changes the bytes only)."""
    data = (root / folder_from / f"{source_id}.jpg").read_bytes()
    if comment:  # insert a COM segment after SOI: other bytes, same decoded pixels
        text = b"re-shared copy"
        data = data[:2] + b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text + data[2:]
    (root / folder_to / f"{target_id}.jpg").write_bytes(data)
