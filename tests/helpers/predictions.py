"""Six images with hand-checked probabilities of two predictors, shared by the prediction-file and grid
statistics tests."""

from __future__ import annotations

import numpy as np

TARGET = [0, 0, 0, 1, 1, 1]

IMAGES = [f"im{i}" for i in range(1, 7)]


# P(class 1). A: positives 0.8, 0.3, 0.9 against negatives 0.1, 0.4, 0.35: 0.8 and 0.9 beat all 3, 0.3 beats
# only 0.1 → 7 of 9 pairs, AUC 7/9. B: positives 0.7, 0.5, 0.15 against 0.2, 0.6, 0.1: 0.7 beats 3, 0.5 beats 2
# (0.2, 0.1), 0.15 beats 1 (0.1) → 6/9 = 2/3.
P_A = [0.1, 0.4, 0.35, 0.8, 0.3, 0.9]


def binary(p):
    p = np.asarray(p, dtype=float)
    return np.stack([1 - p, p], 1)
