"""``lightning_modules/losses.py``: focal loss (Eq. 6) and class weights (CB / ES, Eq. 7–8, and the patch paper's)
on the real HAM10000 counts."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from datamodules.datasets.pooled import HAM_CLASSES
from lightning_modules.losses import class_weights, focal_loss
from lightning_modules.nets.cbam import LEAVES
from tests.conftest import SHARED_DATA
from tests.helpers.real_ham import real_ham

SHARED_HAM = SHARED_DATA / "ham10000"


def test_focal_loss_is_cross_entropy_at_gamma_zero_and_matches_a_hand_value():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    target = torch.tensor([0, 1])
    assert torch.allclose(focal_loss(logits, target, 0.0), F.cross_entropy(logits, target, reduction="none"))
    p = math.exp(2) / (math.exp(2) + 1 + math.exp(-1))  # p_y of the first sample
    assert focal_loss(logits, target, 2.0)[0].item() == pytest.approx(-(1 - p) ** 2 * math.log(p), rel=1e-6)


@pytest.mark.real_data
def test_cb_and_es_weights_on_the_real_ham10000_counts():
    table = pd.read_csv(SHARED_HAM / "HAM10000_metadata.csv")
    counts = [int((table.dx == c.lower()).sum()) for c in LEAVES]
    assert counts == [1113, 6705, 514, 327, 1099, 115, 142]
    n = 10015
    cb = [n / c for c in counts]  # Eq. 7
    beta = (n - 1) / n
    es = [(1 - beta) / (1 - beta ** c) for c in counts]  # Eq. 8
    assert class_weights(counts, "inverse").tolist() == pytest.approx([7 * w / sum(cb) for w in cb], rel=1e-5)
    assert class_weights(counts, "effective_number").tolist() == pytest.approx([7 * w / sum(es) for w in es], rel=1e-5)
    # ES is gentler than CB: the rarest class (DF) against the most common (NV)
    ratio_cb = class_weights(counts, "inverse")[5] / class_weights(counts, "inverse")[1]
    ratio_es = class_weights(counts, "effective_number")[5] / class_weights(counts, "effective_number")[1]
    assert ratio_cb == pytest.approx(6705 / 115, rel=1e-5) and 1 < ratio_es < ratio_cb
    assert es[5] == pytest.approx((1 / n) / (1 - (1 - 1 / n) ** 115), rel=1e-9)


HAM_COUNTS = {"MEL": 1113, "NV": 6705, "BCC": 514, "AKIEC": 327, "BKL": 1099, "DF": 115, "VASC": 142}


@pytest.mark.real_data
def test_class_weights_on_the_real_ham10000_counts():
    counts = [int((real_ham().dx == c.lower()).sum()) for c in HAM_CLASSES]
    assert dict(zip(HAM_CLASSES, counts, strict=True)) == HAM_COUNTS and sum(counts) == 10015
    raw = [10015 / n for n in counts]  # (N / N_i)^1: MEL 8.998, NV 1.494, ..., DF 87.09
    by_hand = [7 * r / sum(raw) for r in raw]
    assert class_weights(counts).tolist() == pytest.approx(by_hand, rel=1e-5)
    assert class_weights(counts)[5] / class_weights(counts)[1] == pytest.approx(6705 / 115, rel=1e-5)
    half = [r ** 0.5 for r in raw]  # k = 0.5
    assert class_weights(counts, power=0.5).tolist() == pytest.approx([7 * h / sum(half) for h in half], rel=1e-5)
    assert class_weights(counts, power=0.0).tolist() == pytest.approx([1.0] * 7)
