"""ISIC 2017 datamodule on the tiny synthetic set and on the real official CSVs."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
import torch

from datamodules import ISIC2017DataModule
from tests.conftest import SHARED_DATA


def labels_from_csv(root, folder="Training"):
    return pd.read_csv(root / f"ISIC-2017_{folder}_Part3_GroundTruth.csv")


@pytest.mark.parametrize("task", ["melanoma", "seborrheic_keratosis", "three_class"])
def test_counts_labels_and_batches(isic2017_root, task):
    data = ISIC2017DataModule(str(isic2017_root), task=task, image_size=32, batch_size=5, num_workers=0)
    data.setup("fit")
    truth = labels_from_csv(isic2017_root)
    expected = {"melanoma": truth.melanoma, "seborrheic_keratosis": truth.seborrheic_keratosis,
                "three_class": truth.melanoma + 2 * truth.seborrheic_keratosis}[task].astype(int).tolist()
    assert data.table("train").labels.tolist() == expected
    assert len(data.table("train")) == 24 and len(data.table("val")) == 8
    assert data.num_classes == (3 if task == "three_class" else 2)
    assert data.class_counts.tolist() == [expected.count(c) for c in range(data.num_classes)]
    batch = next(iter(data.train_dataloader()))
    assert batch["image"].shape == (5, 3, 32, 32) and batch["image"].dtype == torch.float32
    assert batch["label"].shape == (5,) and len(batch["image_id"]) == 5
    assert all(i.startswith("ISIC_") and not i.endswith("superpixels") for i in batch["image_id"])


def test_eval_transform_is_deterministic_and_normalised(isic2017_root):
    data = ISIC2017DataModule(str(isic2017_root), image_size=48, num_workers=0)
    data.setup("validate")
    dataset = data.dataset("val")
    a, b = dataset[0]["image"], dataset[0]["image"]
    assert a.shape == (3, 48, 48) and torch.equal(a, b)
    assert -3 < a.mean() < 3 and a.min() < 0  # ImageNet normalisation applied


def test_train_transforms_from_config_list(isic2017_root):
    spec = [{"RandomCrop": {"height": 16, "width": 16}}, {"HorizontalFlip": {"p": 1.0}}]
    data = ISIC2017DataModule(str(isic2017_root), image_size=32, train_transforms=spec, num_workers=0)
    data.setup("fit")
    assert data.dataset("train")[0]["image"].shape == (3, 16, 16)


def test_real_official_csvs(tmp_path):
    """The real ground truth: headers, 2000/150/600 rows, 374 melanomas and 254 SK in training."""
    source = SHARED_DATA / "isic2017"
    if not source.is_dir():
        pytest.skip("../shared/data/isic2017 not present")
    for folder in ("Training", "Validation", "Test_v2"):
        csv = source / f"ISIC-2017_{folder}_Part3_GroundTruth.csv"
        assert csv.read_bytes().startswith(b"image_id,melanoma,seborrheic_keratosis\r\n")
        shutil.copy(csv, tmp_path)
        images = tmp_path / f"ISIC-2017_{folder}_Data"
        images.mkdir()
        for image_id in pd.read_csv(csv).image_id:  # the datamodule indexes names; decoding is lazy
            (images / f"{image_id}.jpg").write_bytes(b"x")  # a placeholder: decoding is lazy
    melanoma = ISIC2017DataModule(str(tmp_path), task="melanoma")
    keratosis = ISIC2017DataModule(str(tmp_path), task="seborrheic_keratosis")
    three = ISIC2017DataModule(str(tmp_path), task="three_class")
    assert [len(melanoma.table(s)) for s in ("train", "val", "test")] == [2000, 150, 600]
    assert melanoma.class_counts.tolist() == [1626, 374]
    assert keratosis.class_counts.tolist() == [1746, 254]
    assert three.class_counts.tolist() == [1372, 374, 254]
    assert int(melanoma.table("val").labels.sum()) == 30 and int(melanoma.table("test").labels.sum()) == 117


def test_real_images_decode(tmp_path):
    """Real CC0 ISIC-archive images (250 px) go through the same loader and transforms."""
    source = SHARED_DATA / "isic_archive_uda1_250px"
    if not source.is_dir():
        pytest.skip("../shared/data/isic_archive_uda1_250px not present")
    labels = pd.read_csv(source / "uda1_labels_from_json.DERIVED.csv").head(12)
    images = tmp_path / "ISIC-2017_Training_Data"
    images.mkdir()
    rows = []
    for row in labels.itertuples():
        shutil.copy(source / f"{row.image}.jpg", images)
        rows.append(f"{row.image},{float(row.diagnosis == 'melanoma'):.1f},0.0")
    (tmp_path / "ISIC-2017_Training_Part3_GroundTruth.csv").write_text(
        "image_id,melanoma,seborrheic_keratosis\n" + "\n".join(rows) + "\n")
    data = ISIC2017DataModule(str(tmp_path), image_size=64, num_workers=0, train_transforms="default")
    sample = data.dataset("train")[0]
    assert sample["image"].shape == (3, 64, 64) and sample["image_id"] == labels.image[0]
