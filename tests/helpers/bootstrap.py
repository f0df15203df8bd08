"""References and truths for the bootstrap-interval tests."""

from __future__ import annotations

import numpy as np

from tests.helpers.metric_references import reference_binary_metrics


def torchmetrics_values(labels, scores) -> dict[str, float]:
    """The binary metrics by torchmetrics' own classes and the ISIC 2024 host's formula: the references the suite's
    definitions must reproduce."""
    return reference_binary_metrics(labels, scores)


def write_isic2016(folder, n, seed=0):
    """A test-layout ISIC 2016 truth (headerless ``id,0.0|1.0``) of n images, ¼ malignant, and a submission whose
    AUC is about 0.8."""
    rng = np.random.default_rng(seed)
    ids = [f"ISIC_{i:07d}" for i in range(n)]
    labels = (np.arange(n) % 4 == 0).astype(float)
    scores = np.clip(0.35 * labels + 0.65 * rng.random(n), 0, 1)
    (folder / "truth.csv").write_text("".join(f"{i},{y}\n" for i, y in zip(ids, labels, strict=True)))
    (folder / "pred.csv").write_text("image,malignant\n" + "".join(f"{i},{p:.6f}\n" for i, p in
                                                                    zip(ids, scores, strict=True)))
    return folder / "truth.csv", folder / "pred.csv"
