"""ISIC 2018 task 3 class indices of the triplet tests."""

from __future__ import annotations

MEL, NV, BCC, DF = 0, 1, 2, 5
