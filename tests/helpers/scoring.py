"""Image ids for the scoring tests."""

from __future__ import annotations


def random_ids(n: int, start: int = 0) -> list[str]:
    return [f"ISIC_{start + i:07d}" for i in range(n)]
