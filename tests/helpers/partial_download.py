"""The real HAM10000 folder of ../shared/data: the full metadata with 75 images, a partial download."""

from __future__ import annotations

from tests.conftest import HAM_METADATA

HAM = HAM_METADATA.parent
