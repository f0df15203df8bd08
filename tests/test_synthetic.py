"""The synthetic generator writes the official ISIC 2017 layout, deterministically."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from PIL import Image

from datamodules.synthetic import write_synthetic
from datamodules.synthetic.render import render_lesion


def digest(root) -> str:
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    return hashlib.sha256(b"".join(p.read_bytes() for p in files)).hexdigest()


def test_layout_and_csv_bytes_match_the_official_format(isic2017_root):
    for folder, n in (("Training", 24), ("Validation", 8), ("Test_v2", 12)):
        data = isic2017_root / f"ISIC-2017_{folder}_Data"
        images = sorted(data.glob("ISIC_???????.jpg"))
        assert len(images) == n
        assert len(list(data.glob("*_superpixels.png"))) == n
        raw = (isic2017_root / f"ISIC-2017_{folder}_Part3_GroundTruth.csv").read_bytes()
        assert raw.startswith(b"image_id,melanoma,seborrheic_keratosis\r\n")
        lines = raw.decode().split("\r\n")[1:-1]
        assert len(lines) == n and "\n" not in "".join(lines)
        for line in lines:
            image_id, mel, sk = line.split(",")
            assert (data / f"{image_id}.jpg").exists()
            assert mel in ("0.0", "1.0") and sk in ("0.0", "1.0") and not (mel == sk == "1.0")
    image = Image.open(next((isic2017_root / "ISIC-2017_Training_Data").glob("ISIC_*.jpg")))
    assert image.size == (32, 32) and image.mode == "RGB"


def test_same_seed_same_bytes_other_seed_other_images(tmp_path):
    write_synthetic("isic2017", tmp_path / "a", n=8, size=32, seed=3)
    write_synthetic("isic2017", tmp_path / "b", n=8, size=32, seed=3)
    write_synthetic("isic2017", tmp_path / "c", n=8, size=32, seed=4)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert digest(tmp_path / "a") != digest(tmp_path / "c")


def test_every_class_appears_and_lesions_differ_by_diagnosis():
    """Melanomas are darker and more varied in colour than nevi on average (the clues it learns)."""
    stats = {}
    for dx in ("nv", "mel", "sk"):
        spreads, darkness = [], []
        for i in range(40):
            drawn = render_lesion(dx, 64, np.random.default_rng(i))
            image, mask = drawn.image, drawn.mask
            pixels = np.asarray(image, np.float32)[np.asarray(mask) > 0]
            spreads.append(pixels.std(0).mean())
            darkness.append(255 - pixels.mean())
            assert 0 < (np.asarray(mask) > 0).mean() < 0.8  # a lesion, not the whole image
        stats[dx] = (np.mean(spreads), np.mean(darkness))
    assert stats["mel"][0] > stats["nv"][0]  # colour variegation
    assert stats["sk"][1] < stats["nv"][1]  # seborrheic keratoses are lighter


def test_an_existing_set_of_another_size_is_never_reused(tmp_path):
    from datamodules.synthetic import ensure_synthetic
    from dermlab.errors import DataError

    assert ensure_synthetic("isic2016", tmp_path / "s", n=12, size=32)
    assert not ensure_synthetic("isic2016", tmp_path / "s", n=12, size=32)  # the same set: kept
    with pytest.raises(DataError, match="n=12 size=32.*not dataset=isic2016 n=600"):
        ensure_synthetic("isic2016", tmp_path / "s", n=600, size=32)
