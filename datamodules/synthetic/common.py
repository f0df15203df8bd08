"""Helpers shared by the synthetic layout writers: seeded draws, ids, official CSV bytes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def split_sizes(n_train: int, splits: Sequence[str] = ("train", "val", "test")) -> dict[str, int]:
    """Training gets ``n_train`` images; validation a quarter and test half of that (at least 8)."""
    sizes = {"train": n_train, "val": max(8, n_train // 4), "test": max(8, n_train // 2)}
    return {split: sizes[split] for split in splits}


def draw_classes(rng: np.random.Generator, n: int, priors: dict[str, float], minimum: int = 1) -> list[str]:
    """``n`` class names drawn with ``priors`` (normalised), each class at least ``minimum`` times when n allows."""
    names = list(priors)
    p = np.array(list(priors.values()), float)
    drawn = [str(x) for x in rng.choice(names, size=n, p=p / p.sum())]
    slot = 0
    for name in names:
        while drawn.count(name) < minimum and slot < n and n >= minimum * len(names):
            if drawn.count(drawn[slot]) > minimum:
                drawn[slot] = name
            slot += 1
    return drawn


def item_rng(seed: int, *keys: int) -> np.random.Generator:
    """Independent generator for one image: it depends only on (seed, keys), not on n."""
    return np.random.default_rng([seed, *keys])


def write_csv(path: Path, header: str | None, rows: Sequence[str], crlf: bool = True) -> None:
    """Write an official-looking CSV: optional header, CRLF line endings unless ``crlf=False``."""
    newline = "\r\n" if crlf else "\n"
    lines = ([header] if header else []) + list(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((newline.join(lines) + newline).encode("ascii"))


def wh(size: int, aspect: float = 0.75) -> tuple[int, int]:
    """(width, height) with the 4:3 landscape aspect of most dermoscopy images."""
    return size, max(8, round(size * aspect))
