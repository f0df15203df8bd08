"""The real official metadata (../shared/data) of the datamodule tests."""

from __future__ import annotations

from tests.conftest import HAM_METADATA

HAM = HAM_METADATA

HAM_COUNTS = {"MEL": 1113, "NV": 6705, "BCC": 514, "AKIEC": 327, "BKL": 1099, "DF": 115, "VASC": 142}
