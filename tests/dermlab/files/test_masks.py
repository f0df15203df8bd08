"""``dermlab/files/masks.py``: one mask reader whose threshold is the official scorer's (``> 128``, single-channel
only), on hand-made and on the real HAM10000 masks."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from datamodules import ISIC2018SegmentationDataModule
from dermlab.challenge.scoring import score_segmentation
from dermlab.errors import DataError
from dermlab.files.masks import MASK_THRESHOLD, load_mask, read_mask, write_mask
from tests.conftest import (
    HAM_METADATA,
    SHARED_DATA,  # real files (see its SOURCES.md)
)

HAM = SHARED_DATA / "ham10000"
HAM_MASKS = HAM / "HAM10000_segmentations_lesion_tschandl"


def official_segmentation(truth_dir, prediction_dir) -> dict:
    from isic_challenge_scoring.segmentation import SegmentationScore

    return SegmentationScore.from_dir(truth_dir, prediction_dir).to_dict()["macro_average"]


def seg_data(root):
    return ISIC2018SegmentationDataModule(str(root), task=1, image_size=32, num_workers=0)


# --- case 1: {0, 1} masks -------------------------------------------------------------------------------------

def test_zero_one_mask_is_refused_naming_the_file_by_loader_and_scorer(copy_of, tmp_path):
    root = copy_of("isic2018_task1")
    data = seg_data(root)
    train = data.table("train")
    mask = train.masks[0][0]
    lesion = np.asarray(Image.open(mask)) > MASK_THRESHOLD
    assert lesion.any()
    Image.fromarray(lesion.astype(np.uint8)).save(mask)  # the {0, 1} copy
    with pytest.raises(DataError, match=rf"mask '.*{mask.name}'.* none above 128.*rescale it to 0/255"):
        data.dataset("train")[0]
    truth = root / "ISIC2018_Task1_Training_GroundTruth"
    with pytest.raises(DataError, match=rf"mask '.*{mask.name}'.* none above 128"):
        score_segmentation(truth, truth)
    # rescaled as the message says, the lesion has its full area again, in the loader and in the scorer
    Image.fromarray((np.asarray(Image.open(mask)) > 0).astype(np.uint8) * 255).save(mask)
    assert (load_mask(mask, lesion.shape) == 255).sum() == lesion.sum() > 0
    assert score_segmentation(truth, truth)["macro"]["jaccard"] == 1.0


# --- case 2: one threshold, the official one --------------------------------------------------------------------

def test_pixel_of_128_is_background_in_loader_scorer_and_official_scorer(tmp_path):
    truth, prediction = tmp_path / "truth", tmp_path / "prediction"
    truth.mkdir(), prediction.mkdir()
    values = np.zeros((8, 8), np.uint8)
    values[:4] = 255
    values[4, :4] = 128  # the disputed pixels
    values[5, :4] = 129
    Image.fromarray(values).save(truth / "ISIC_0000001_segmentation.png")
    predicted = np.zeros((8, 8), np.uint8)
    predicted[:6] = 255  # says lesion on the 128 row: a false positive if 128 is background
    Image.fromarray(predicted).save(prediction / "ISIC_0000001_segmentation.png")
    loaded = load_mask(truth / "ISIC_0000001_segmentation.png", (8, 8))
    assert (loaded[4, :4] == 0).all() and (loaded[5, :4] == 255).all()
    ours = score_segmentation(truth, prediction)["macro"]
    official = official_segmentation(truth, prediction)
    assert ours["jaccard"] == pytest.approx(official["jaccard"], abs=1e-12) == (32 + 4) / (32 + 4 + 12)
    assert {k: pytest.approx(v, abs=1e-12) for k, v in ours.items()} == {k: official[k] for k in ours}


@pytest.mark.real_data
@pytest.mark.skipif(not HAM_MASKS.is_dir(), reason="the real HAM10000 masks in ../shared/data are absent")
def test_real_ham10000_masks_score_as_the_official_scorer(tmp_path):
    """The 5 real Tschandl et al. lesion masks against shifted copies (some edge pixels at 128 and 200):
    the loader, ``dermlab score --seg`` and the official scorer see the same pixels and the same Jaccard."""
    truth, prediction = tmp_path / "truth", tmp_path / "prediction"
    shutil.copytree(HAM_MASKS, truth)
    prediction.mkdir()
    for path in sorted(truth.iterdir()):
        values = np.asarray(Image.open(path))
        shifted = np.roll(values, (9, -14), axis=(0, 1)).copy()
        edge = (shifted > 0) & ~(values > 0)
        shifted[edge & (np.arange(shifted.shape[1]) % 2 == 0)] = 128
        shifted[edge & (np.arange(shifted.shape[1]) % 2 == 1)] = 200
        Image.fromarray(shifted).save(prediction / path.name)
        assert np.array_equal(load_mask(prediction / path.name, shifted.shape) == 255, shifted > 128)
    ours = score_segmentation(truth, prediction)["macro"]
    official = official_segmentation(truth, prediction)
    assert {k: pytest.approx(v, abs=1e-12) for k, v in ours.items()} == {k: official[k] for k in ours}
    assert 0.5 < ours["jaccard"] < 1.0
    assert score_segmentation(truth, truth)["macro"]["jaccard"] == 1.0


def test_not_single_channel_masks_are_refused_everywhere_as_the_official_scorer(tmp_path):
    from isic_challenge_scoring.load_image import load_segmentation_image
    from isic_challenge_scoring.types import ScoreError

    mask = tmp_path / "ISIC_0000001_segmentation.png"
    Image.fromarray(np.full((4, 4), 255, np.uint8)).convert("RGB").save(mask)
    with pytest.raises(ScoreError, match="not single-channel"):
        load_segmentation_image(mask)
    with pytest.raises(DataError, match=rf"mask '.*{mask.name}' is not single-channel \(PIL mode RGB\).*convert"):
        load_mask(mask, (4, 4))
    with pytest.raises(DataError, match="not single-channel"):
        score_segmentation(tmp_path, tmp_path)
    Image.fromarray(np.eye(4, dtype=bool)).save(mask)  # 1-bit masks are accepted, by both, as 0/255
    assert np.array_equal(read_mask(mask), load_segmentation_image(mask) > 128)


def test_mask_writer_output_reads_back_unchanged(tmp_path):
    binary = np.random.default_rng(0).random((9, 7)) > 0.5
    assert np.array_equal(read_mask(write_mask(tmp_path / "ISIC_0000001_segmentation.png", binary)), binary)
    assert Image.open(tmp_path / "ISIC_0000001_segmentation.png").mode == "L"


@pytest.mark.parametrize("cached", [False, True], ids=["original", "cache"])
def test_an_empty_mask_is_named(copy_of, tmp_path, cached):
    root = copy_of("isic2018_task1")
    mask = sorted((root / "ISIC2018_Task1_Validation_GroundTruth").glob("*.png"))[0]
    mask.write_bytes(b"")
    module = ISIC2018SegmentationDataModule(str(root), num_workers=0, eval_transforms=[],
                                            **({"cache_dir": str(tmp_path / "c"), "max_side": 16} if cached else {}))
    index = module.table("val").ids.index(mask.name.removesuffix("_segmentation.png"))
    with pytest.raises(DataError, match=f"mask '{mask}' is empty \\(0 bytes\\).*; re-download it"):
        module.dataset("val")[index]


MASKS = HAM / "HAM10000_segmentations_lesion_tschandl"


@pytest.mark.real_data
@pytest.mark.skipif(not HAM_METADATA.is_file(), reason="../shared/data not present")
@pytest.mark.parametrize("image_id, area", [("ISIC_0024311", 79566), ("ISIC_0027001", 55103),
                                             ("ISIC_0027287", 155747), ("ISIC_0027533", 53625),
                                             ("ISIC_0027800", 37627)])
def test_the_real_masks_read_with_their_lesion_area(image_id, area):
    mask = read_mask(MASKS / f"{image_id}_segmentation.png", shape=(450, 600))
    assert mask.dtype == bool and int(mask.sum()) == area
    assert any((HAM / part / f"{image_id}.jpg").is_file() for part in ("HAM10000_images_part_1",
                                                                        "HAM10000_images_part_2"))
