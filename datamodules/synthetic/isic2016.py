"""Synthetic ISIC 2016 (ISBI 2016) Part 3 with Part 1 masks, in the official layout.

``ISBI2016_ISIC_Part3_{Training,Test}_Data/ISIC_xxxxxxx.jpg``; training truth headerless
``ISIC_xxxxxxx,benign|malignant`` and test truth headerless ``ISIC_xxxxxxx,0.0|1.0`` (CRLF);
Part 1 lesion masks ``ISBI2016_ISIC_Part1_{Training,Test}_GroundTruth/ISIC_xxxxxxx_Segmentation.png``.
"""

from __future__ import annotations

from pathlib import Path

from datamodules.synthetic.common import draw_classes, item_rng, split_sizes, write_csv
from datamodules.synthetic.render import render_lesion

# 173 of 900 training images are malignant; benign lesions are mostly nevi, some keratoses.
PRIORS = {"nv": 0.70, "sk": 0.11, "mel": 173 / 900}
#: One training and one validation image (``val_size: 1``); the datamodule's default ``val_size`` (251, the
#: paper's) needs ``n`` of 252 or more.
MIN_N = 2


def write_isic2016(out: Path, n: int, size: int, seed: int) -> dict[str, int]:
    """``n`` training images (test ``n // 2``, at least 8) with their masks; returns counts per split."""
    sizes = split_sizes(n, ("train", "test"))
    next_id = 0
    for split_index, (split, folder) in enumerate((("train", "Training"), ("test", "Test"))):
        rows = []
        for i, dx in enumerate(draw_classes(item_rng(seed, 16, split_index), sizes[split], PRIORS)):
            image_id = f"ISIC_{next_id:07d}"
            next_id += 1
            drawn = render_lesion(dx, size, item_rng(seed, 16, split_index, i))
            (out / f"ISBI2016_ISIC_Part3_{folder}_Data").mkdir(parents=True, exist_ok=True)
            drawn.image.save(out / f"ISBI2016_ISIC_Part3_{folder}_Data" / f"{image_id}.jpg", quality=92)
            masks = out / f"ISBI2016_ISIC_Part1_{folder}_GroundTruth"
            masks.mkdir(parents=True, exist_ok=True)
            drawn.mask.save(masks / f"{image_id}_Segmentation.png")
            malignant = dx == "mel"
            label = ("malignant" if malignant else "benign") if split == "train" else float(malignant)
            rows.append(f"{image_id},{label}")
        write_csv(out / f"ISBI2016_ISIC_Part3_{folder}_GroundTruth.csv", None, rows)
    return sizes
