"""A folder name with a space and ``é``, as people name data folders."""

from __future__ import annotations

SPACED = "My Data é"
