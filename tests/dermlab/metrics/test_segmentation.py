"""``dermlab/metrics/segmentation.py``: the thresholded Jaccard and the task 2 attribute Jaccard, by hand and
against the official scorer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dermlab.challenge.scoring import score_segmentation
from dermlab.metrics.segmentation import SegmentationScores, attribute_jaccard


def test_task2_metric_matches_the_official_scorer(tmp_path):
    """Per attribute: pixel counts normalised per image, summed over images; overall: over all attributes."""
    from isic_challenge_scoring import task2

    truth_dir, prediction_dir = tmp_path / "truth", tmp_path / "pred"
    truth_dir.mkdir()
    prediction_dir.mkdir()
    rng = np.random.default_rng(0)
    names = ("globules", "streaks")
    metric = SegmentationScores(names)
    for number, size in enumerate([(20, 30), (40, 24), (16, 16)]):
        truths = rng.random((2, *size)) < 0.2
        predictions = truths ^ (rng.random((2, *size)) < 0.1)
        if number == 2:
            truths[1], predictions[1] = False, False  # streaks absent and not predicted
        for k, name in enumerate(names):
            stem = f"ISIC_{number:07d}_attribute_{name}.png"
            Image.fromarray(truths[k].astype(np.uint8) * 255).save(truth_dir / stem)
            Image.fromarray(predictions[k].astype(np.uint8) * 255).save(prediction_dir / stem)
        metric.update(torch.tensor(predictions, dtype=torch.float32)[None],
                      torch.tensor(truths, dtype=torch.float32)[None])
    official = task2.score(truth_dir, prediction_dir)
    ours = score_segmentation(truth_dir, prediction_dir)
    module = metric.compute()
    assert ours["attribute_jaccard"] == pytest.approx(official["overall"], abs=1e-12)
    assert module["attribute_jaccard"].item() == pytest.approx(official["overall"], abs=1e-9)
    for name in names:
        assert ours["per_attribute"][name] == pytest.approx(official[name]["jaccard"], abs=1e-12)
        assert module[f"jaccard_{name}"].item() == pytest.approx(official[name]["jaccard"], abs=1e-9)


def test_attribute_jaccard_by_hand():
    """Image 1 (4 px): tp 1, fp 1, fn 0; image 2 (2 px): tp 1, fn 1 → normalised sums tp 0.75, fp 0.25, fn 0.5."""
    counts = torch.tensor([[[1.0, 1.0, 2.0, 0.0]], [[1.0, 0.0, 0.0, 1.0]]], dtype=torch.float64)
    per_attribute, overall = attribute_jaccard(counts)
    assert per_attribute.item() == pytest.approx(0.75 / 1.5) and overall.item() == pytest.approx(0.5)


# --- the challenge metric and the official scorer --------------------------------------------------------------
def masks_with_iou(iou_percent: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A 100-pixel truth and a prediction covering ``iou_percent`` of its pixels (nothing outside)."""
    truth = torch.zeros(1, 1, 10, 20)
    truth[..., :, :10] = 1
    prediction = torch.zeros_like(truth)
    prediction.view(-1)[torch.nonzero(truth.view(-1)).view(-1)[:iou_percent]] = 1
    return prediction, truth


def test_thresholded_jaccard_zeroes_images_below_0_65():
    metric = SegmentationScores()
    for iou in (64, 66):
        metric.update(*masks_with_iou(iou))
    scores = metric.compute()
    assert scores["jaccard"].item() == pytest.approx((0.64 + 0.66) / 2)
    assert scores["threshold_jaccard"].item() == pytest.approx(0.66 / 2)  # 0.64 → 0, 0.66 kept
    assert scores["dice"].item() == pytest.approx((2 * 64 / 164 + 2 * 66 / 166) / 2)
