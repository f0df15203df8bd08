"""Synthetic ISIC 2017 Part 3 in the official layout (see ``datamodules/isic2017.py``).

The ground-truth CSVs are byte-compatible with the official ones: header
``image_id,melanoma,seborrheic_keratosis``, values ``0.0``/``1.0``, CRLF line endings; the image
folders also hold ``*_superpixels.png`` maps and a metadata CSV, as downloaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from datamodules.synthetic.common import draw_classes, item_rng, split_sizes, write_csv
from datamodules.synthetic.render import render_lesion

SPLIT_FOLDERS = {"train": "Training", "val": "Validation", "test": "Test_v2"}
# Class priors of the official training set: 374 melanoma, 254 seborrheic keratosis of 2000.
PRIORS = {"nv": 1372 / 2000, "mel": 374 / 2000, "sk": 254 / 2000}


def write_isic2017(out: Path, n: int, size: int, seed: int) -> dict[str, int]:
    """``n`` training images of ``size`` px (plus validation and test); returns counts per split."""
    sizes = split_sizes(n)
    next_id = 0
    for split_index, (split, folder) in enumerate(SPLIT_FOLDERS.items()):
        data_dir = out / f"ISIC-2017_{folder}_Data"
        data_dir.mkdir(parents=True, exist_ok=True)
        labels, meta = [], []
        for i, dx in enumerate(draw_classes(item_rng(seed, split_index), sizes[split], PRIORS)):
            image_id = f"ISIC_{next_id:07d}"
            next_id += 1
            rng = item_rng(seed, split_index, i)
            render_lesion(dx, size, rng).image.save(data_dir / f"{image_id}.jpg", quality=92)
            Image.fromarray(np.zeros((size, size, 3), np.uint8)).save(data_dir / f"{image_id}_superpixels.png")
            labels.append(f"{image_id},{float(dx == 'mel'):.1f},{float(dx == 'sk'):.1f}")
            meta.append(f"{image_id},{int(rng.integers(20, 85))},{rng.choice(['male', 'female'])}")
        write_csv(out / f"ISIC-2017_{folder}_Part3_GroundTruth.csv", "image_id,melanoma,seborrheic_keratosis", labels)
        write_csv(data_dir / f"ISIC-2017_{folder}_Data_metadata.csv", "image_id,age_approximate,sex", meta)
    return sizes
