"""The synthetic twins (``datamodules/synthetic``): official layouts and bytes, seeds, what each diagnosis looks
like, and never writing into a real download."""

from __future__ import annotations

import hashlib

import h5py
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from datamodules.synthetic import write_synthetic
from datamodules.synthetic.isic2024 import TEST_COLUMNS, TRAIN_COLUMNS
from datamodules.synthetic.render import ATTRIBUTES, render_lesion
from dermlab.errors import DataError
from dermlab.files.hdf5 import HDF5Image
from tests.helpers.isic2024 import CONTAINER


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


def test_the_synthetic_writer_never_writes_into_a_real_download(tmp_path):
    from datamodules.synthetic import write_synthetic

    real = tmp_path / "isic2017"
    real.mkdir()
    (real / "ISIC-2017_Training_Part3_GroundTruth.csv").write_text("image_id,melanoma,seborrheic_keratosis\n")
    with pytest.raises(DataError, match="never writes into"):
        write_synthetic("isic2017", real, n=8, size=32)
    assert [p.name for p in real.iterdir()] == ["ISIC-2017_Training_Part3_GroundTruth.csv"]  # untouched
    twin = tmp_path / "twin"
    write_synthetic("isic2018_task1", twin, n=8, size=32)
    write_synthetic("isic2018_task3", twin, n=8, size=32)  # a synthetic folder takes the other tasks' files


def test_attribute_masks_cover_what_was_painted(synthetic):
    root = synthetic("isic2018_task2")
    folder = root / "ISIC2018_Task2_Training_GroundTruth_v3"
    painted = {a: sum(np.asarray(Image.open(p)).any() for p in folder.glob(f"*_attribute_{a}.png")) for a in ATTRIBUTES}
    assert painted["pigment_network"] > 0  # common in nevi, which dominate the synthetic set


def test_synthetic_twin_has_the_official_layout(synthetic):
    root = synthetic("isic2024")
    train, test = pd.read_csv(root / "train-metadata.csv"), pd.read_csv(root / "test-metadata.csv")
    assert tuple(train.columns) == TRAIN_COLUMNS and len(TRAIN_COLUMNS) == 55 and len(train) == 24
    assert tuple(test.columns) == TEST_COLUMNS and len(TEST_COLUMNS) == 44 and len(test) == 12
    assert set(train.target) == {0, 1} and train.patient_id.value_counts().max() > 1  # patients of several crops
    assert not set(train.patient_id) & set(test.patient_id)
    assert list(pd.read_csv(root / "sample_submission.csv").columns) == ["isic_id", "target"]
    for part, ids in (("train", train.isic_id), ("test", test.isic_id)):
        with h5py.File(root / f"{part}-image.hdf5", "r") as file:
            assert sorted(file.keys()) == sorted(ids)
            stored = file[ids.iloc[0]]
            assert stored.shape == () and stored.dtype.kind == "S"  # one scalar byte string per image
    for image_id in train.isic_id:  # the HDF5 file holds the JPEG files' exact bytes
        jpeg = root / "train-image" / "image" / f"{image_id}.jpg"
        assert HDF5Image(root / CONTAINER, image_id).read_bytes() == jpeg.read_bytes()
