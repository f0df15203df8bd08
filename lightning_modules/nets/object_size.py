"""Morphological object size from a class activation map, ``dds`` paper §2.2 (Fig. 3).

The CAM of the predicted class, upsampled bicubically to the input size and normalised to [0, 1],
is thresholded at δ' = 0.9 for the central region; its bounding box then grows by one pixel on all
four sides at a time for as long as the grown box holds no pixel below δ = 0.5 (the summary mask)
and stays inside the image. The object size is √(box area); Obj of a data set is the mean over
sampled training images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

CENTRAL = 0.9  # δ'
SUMMARY = 0.5  # δ


@dataclass
class ObjectBox:
    """Boxes as (top, left, bottom, right), inclusive; ``size`` = √(area of the grown box)."""

    central: tuple[int, int, int, int]
    grown: tuple[int, int, int, int]
    size: float


def object_box(cam: np.ndarray, central: float = CENTRAL, summary: float = SUMMARY) -> ObjectBox:
    """Central box of ``cam`` ≥ ``central``, grown equally until it would take in a pixel < ``summary``."""
    rows, columns = np.nonzero(cam >= central)
    if len(rows) == 0:
        raise ValueError("the activation map has no pixel at or above the central threshold; is it normalised?")
    top, left, bottom, right = rows.min(), columns.min(), rows.max(), columns.max()
    core = (int(top), int(left), int(bottom), int(right))
    height, width = cam.shape
    while top > 0 and left > 0 and bottom < height - 1 and right < width - 1:
        if cam[top - 1:bottom + 2, left - 1:right + 2].min() < summary:
            break
        top, left, bottom, right = top - 1, left - 1, bottom + 1, right + 1
    area = (bottom - top + 1) * (right - left + 1)
    return ObjectBox(core, (int(top), int(left), int(bottom), int(right)), math.sqrt(area))


def estimate_object_size(net: nn.Module, dataset: Dataset, samples: int = 200, seed: int = 0, batch_size: int = 16,
                         keep: int = 4) -> tuple[float, list[ObjectBox], list[tuple]]:
    """Obj = mean √(grown box area) over ``samples`` random images of ``dataset`` (CAM of the predicted class).

    Returns Obj, every image's box, and ``keep`` (image, CAM, box) examples for the Fig. 3 panels.
    """
    from lightning_modules.nets.cam import class_activation_maps

    order = np.random.default_rng(seed).permutation(len(dataset))[:samples]
    loader = DataLoader(Subset(dataset, order.tolist()), batch_size=batch_size)
    was_training = net.training
    net.eval()
    boxes, examples = [], []
    try:
        for batch in loader:
            cams, _ = class_activation_maps(net, batch["image"].to(next(net.parameters()).device))
            for image, cam in zip(batch["image"], cams, strict=True):
                cam = cam.float().cpu().numpy()
                boxes.append(object_box(cam))
                if len(examples) < keep:
                    examples.append((image, cam, boxes[-1]))
    finally:
        net.train(was_training)
    return float(np.mean([b.size for b in boxes])), boxes, examples
