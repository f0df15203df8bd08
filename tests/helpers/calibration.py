"""A set whose softmax outputs are overconfident by a known factor."""

from __future__ import annotations

import torch


def overconfident_set(n: int = 400, classes: int = 2, scale: float = 4.0, seed: int = 0):
    """Logits z drawn so that softmax(z) is calibrated (labels sampled from it), then sharpened ×``scale``."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, classes, generator=generator, dtype=torch.float64)
    targets = torch.multinomial(logits.softmax(1), 1, generator=generator).squeeze(1)
    return (scale * logits).log_softmax(1), targets
