"""``datamodules/isic2017.py``: the tiny synthetic set and the real official CSVs, bad input named in one clear
message, extra training images, metadata and submissions."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from datamodules import ISIC2017DataModule
from dermlab.challenge.scoring import score
from dermlab.errors import DataError
from dermlab.files.metadata import age_band
from tests.conftest import (
    SHARED_DATA,  # real files (see its SOURCES.md)
    )
from tests.helpers.isic2017_files import first_image
from tests.helpers.official_scorer import assert_same_scores, official


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


@pytest.mark.real_data
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


@pytest.mark.real_data
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


def _extra_set(root, folder, ids, rows):
    """An ISIC-archive-like folder: images copied from ``root``'s training set under new ids, and their CSV."""
    import shutil

    folder.mkdir()
    for new, old in zip(ids, rows, strict=True):
        shutil.copy(root / "ISIC-2017_Training_Data" / f"{old}.jpg", folder / f"{new}.jpg")
    csv = folder / "archive.csv"
    csv.write_text("image_id,melanoma,seborrheic_keratosis\n"
                   + "".join(f"{i},{float(k == 0)},{float(k == 1)}\n" for k, i in enumerate(ids)))
    return csv


def test_extra_training_images_join_the_training_split_only(isic2017_root, tmp_path):
    """The paper adds 1320 ISIC-archive images to training (§IV-A); here 3 images in the 2017 CSV format."""
    train_ids = ISIC2017DataModule(str(isic2017_root)).table("train").ids
    csv = _extra_set(isic2017_root, tmp_path / "archive", ["ISIC_9000001", "ISIC_9000002", "ISIC_9000003"],
                     train_ids[:3])
    data = ISIC2017DataModule(str(isic2017_root), extra_train_csv=str(csv))
    train = data.table("train")
    assert train.ids == [*train_ids, "ISIC_9000001", "ISIC_9000002", "ISIC_9000003"]
    assert list(train.labels[-3:]) == [1, 0, 0]  # melanoma, keratosis (→ "other" for the melanoma task), nevus
    assert train.paths[-1] == tmp_path / "archive" / "ISIC_9000003.jpg"
    assert data.dataset("train")[len(train) - 1]["image"].shape[0] == 3
    assert len(data.table("val")) == len(ISIC2017DataModule(str(isic2017_root)).table("val"))


def test_extra_training_images_may_not_repeat_a_test_image(isic2017_root, tmp_path):
    from dermlab.errors import DataError

    test_id = ISIC2017DataModule(str(isic2017_root)).table("test").ids[0]
    train_id = ISIC2017DataModule(str(isic2017_root)).table("train").ids[0]
    csv = _extra_set(isic2017_root, tmp_path / "archive", [test_id], [train_id])
    with pytest.raises(DataError, match=rf"archive\.csv.*already in the test split \(e\.g\. {test_id}\)"):
        ISIC2017DataModule(str(isic2017_root), extra_train_csv=str(csv)).table("train")


TRAIN_CSV = "ISIC-2017_Training_Part3_GroundTruth.csv"


def rewrite_csv(root, edit):
    path = root / TRAIN_CSV
    lines = path.read_text().splitlines()
    path.write_text("\n".join(edit(lines)) + "\n")
    return lines


def table_error(root) -> str:
    with pytest.raises(DataError) as caught:
        ISIC2017DataModule(str(root), num_workers=0).setup("fit")
    return str(caught.value)


def test_root_that_does_not_exist(tmp_path):
    message = table_error(tmp_path / "nowhere")
    assert "nowhere" in message and "does not exist" in message and "dermlab synth" in message


def test_image_listed_but_absent(broken_root):
    image = first_image(broken_root)
    image.unlink()
    message = table_error(broken_root)
    assert image.name in message and TRAIN_CSV in message and "missing" in message


def test_empty_image_folder(broken_root):
    for path in (broken_root / "ISIC-2017_Training_Data").iterdir():
        path.unlink()
    message = table_error(broken_root)
    assert "ISIC-2017_Training_Data" in message and "no images (.jpg/" in message


def test_csv_without_expected_column(broken_root):
    rewrite_csv(broken_root, lambda lines: [lines[0].replace("melanoma", "mel")] + lines[1:])
    message = table_error(broken_root)
    assert TRAIN_CSV in message and "lacks column(s) melanoma" in message


def test_label_outside_zero_one(broken_root):
    lines = rewrite_csv(broken_root, lambda lines: [lines[0], lines[1].replace(",0.0,", ",2.0,", 1)
                                                    .replace(",1.0,", ",2.0,", 1), *lines[2:]])
    message = table_error(broken_root)
    assert "'melanoma'" in message and "'2.0'" in message and lines[1].split(",")[0] in message


def test_same_image_twice(broken_root):
    lines = rewrite_csv(broken_root, lambda lines: [*lines, lines[1]])
    message = table_error(broken_root)
    assert lines[1].split(",")[0] in message and "more than once" in message


def test_truncated_jpeg_names_the_file(broken_root):
    image = first_image(broken_root)
    image.write_bytes(image.read_bytes()[:200])
    data = ISIC2017DataModule(str(broken_root), num_workers=0)
    data.setup("fit")
    index = data.table("train").ids.index(image.stem)
    with pytest.raises(DataError, match=f"cannot decode image '.*{image.name}'.*corrupt or truncated"):
        data.dataset("train")[index]


UDA = SHARED_DATA / "isic_archive_uda1_250px"


# --- case 4: upper-case extensions ---------------------------------------------------------------------------------

@pytest.mark.real_data
def test_upper_case_extra_training_images_are_read(isic2017_root, tmp_path):
    """ISIC-archive downloads named ``ISIC_xxxxxxx.JPG`` (real UDA-1 images where ../shared/data has them)."""
    sources = sorted(UDA.glob("ISIC_*.jpg"))[:3] or sorted((isic2017_root / "ISIC-2017_Training_Data").glob(
        "ISIC_???????.jpg"))[:3]
    extra = tmp_path / "archive"
    extra.mkdir()
    ids = [f"ISIC_900000{k}" for k in range(3)]
    for new, source in zip(ids, sources, strict=True):
        shutil.copy(source, extra / f"{new}.JPG")
    (extra / f"._{ids[0]}.JPG").write_bytes(b"\x00\x05\x16\x07")
    csv = extra / "archive.csv"
    csv.write_text("image_id,melanoma,seborrheic_keratosis\n" + "".join(f"{i},1.0,0.0\n" for i in ids))
    data = ISIC2017DataModule(str(isic2017_root), extra_train_csv=str(csv), image_size=32, num_workers=0)
    train = data.table("train")
    assert train.ids[-3:] == ids and train.paths[-1] == extra / f"{ids[-1]}.JPG"
    assert data.dataset("train")[len(train) - 1]["image"].shape == (3, 32, 32)


ISIC2017_TEST_TRUTH = SHARED_DATA / "isic2017" / "ISIC-2017_Test_v2_Part3_GroundTruth.csv"


needs_2017_truth = pytest.mark.skipif(not ISIC2017_TEST_TRUTH.is_file(), reason=f"absent: {ISIC2017_TEST_TRUTH}")


# --- case 7: ISIC 2017 submissions hold both columns ------------------------------------------------------------

@pytest.mark.real_data
@needs_2017_truth
@pytest.mark.parametrize("task", ["melanoma", "seborrheic_keratosis"])
def test_isic2017_single_task_submission_has_both_columns(task, tmp_path):
    truth = pd.read_csv(ISIC2017_TEST_TRUTH)
    data = ISIC2017DataModule(str(tmp_path), task=task)
    probabilities = np.random.default_rng(7).dirichlet([1, 1], size=len(truth))
    submission = data.submission(truth.image_id.tolist(), probabilities)
    assert list(submission.columns) == ["image_id", "melanoma", "seborrheic_keratosis"]
    other = "seborrheic_keratosis" if task == "melanoma" else "melanoma"
    assert submission[other].eq(0.5).all() and np.allclose(submission[task], probabilities[:, 1])
    submission.to_csv(tmp_path / "pred.csv", index=False, float_format="%.6f")
    ours = score(ISIC2017_TEST_TRUTH, tmp_path / "pred.csv")
    # today's official scorer names the id column `image` (the 2017 files say `image_id`): renamed for it alone
    for name in ("pred", "truth"):
        source = tmp_path / "pred.csv" if name == "pred" else ISIC2017_TEST_TRUTH
        pd.read_csv(source).rename(columns={"image_id": "image"}).to_csv(tmp_path / f"{name}_image.csv", index=False)
    theirs = official(tmp_path / "truth_image.csv", tmp_path / "pred_image.csv")  # accepted: raises otherwise
    assert_same_scores(ours, theirs)
    assert ours["per_category"][other]["auc"] == 0.5


def test_isic2017_metadata_csvs(broken_root):
    from datamodules import ISIC2017DataModule

    data = ISIC2017DataModule(str(broken_root), num_workers=0)
    csv = broken_root / "ISIC-2017_Test_v2_Data" / "ISIC-2017_Test_v2_Data_metadata.csv"  # the synthetic twin's
    written = pd.read_csv(csv).set_index("image_id")
    frame = data.metadata("test")
    assert list(frame.columns) == ["sex", "age_band"]
    for image_id, found in frame.iterrows():
        assert found.tolist() == [written.sex[image_id], age_band(written.age_approximate[image_id])]
    ids = data.table("test").ids
    ages, sexes = ["unknown", "35", "80"], ["female", "male", "unknown"]
    csv.write_text(
        "image_id,age_approximate,sex\r\n" + "".join(f"{i},{ages[k % 3]},{sexes[k % 3]}\r\n"
                                                     for k, i in enumerate(ids[:-1])))  # the last one unlisted
    frame = ISIC2017DataModule(str(broken_root), num_workers=0).metadata("test")
    assert len(frame) == len(ids)
    assert frame.loc[ids[0]].tolist() == ["female", "unknown"] and frame.loc[ids[1]].tolist() == ["male", "30-44"]
    assert frame.loc[ids[2]].tolist() == ["unknown", "75+"] and frame.loc[ids[-1]].tolist() == ["unknown", "unknown"]
