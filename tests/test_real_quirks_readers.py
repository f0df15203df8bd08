"""Issue #18, the file readers: copies as people hold them on disk (macOS zips, upper-case extensions, phone
photos with an EXIF orientation, {0, 1} masks) read through one folder lister, one image reader and one mask
reader whose threshold is the official scorer's (``isic_challenge_scoring``: ``> 128``, single-channel only)."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest
from PIL import Image

from datamodules import ISIC2016DataModule, ISIC2017DataModule, ISIC2018SegmentationDataModule, VitiligoDataModule
from dermlab.challenge.scoring import score_segmentation
from dermlab.errors import DataError
from dermlab.files.io import image_size, load_rgb
from dermlab.files.listing import list_images
from dermlab.files.masks import MASK_THRESHOLD, load_mask, read_mask, write_mask
from tests.conftest import SHARED_DATA  # real files (see its SOURCES.md)

HAM = SHARED_DATA / "ham10000"
HAM_MASKS = HAM / "HAM10000_segmentations_lesion_tschandl"
UDA = SHARED_DATA / "isic_archive_uda1_250px"
ORIENTATION = 0x0112


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


# --- cases 3 and 10: the folder lister ---------------------------------------------------------------------------

def test_macos_debris_is_ignored_and_other_image_types_are_read(copy_of, caplog):
    root = copy_of("vitiligo")
    yes = root / "train" / "Yes"
    first = sorted(yes.iterdir())[0]
    (yes / f"._{first.name}").write_bytes(b"\x00\x05\x16\x07AppleDouble resource fork")  # case 3
    (yes / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (root / "__MACOSX" / "train" / "Yes").mkdir(parents=True)
    (yes / "__MACOSX").mkdir()
    Image.open(first).save(yes / "phone.webp")  # case 10: .webp and an upper-case .JPEG are images too
    Image.open(first).save(yes / "camera.JPEG")
    (yes / "iphone.heic").write_bytes(b"not decodable by PIL")  # skipped, but said in a warning
    with caplog.at_level(logging.INFO, logger="dermlab.files.listing"):
        data = VitiligoDataModule(str(root), image_size=32, num_workers=0)
        train = data.table("train")
    ids = [i for i in train.ids if i.startswith("Yes/")]
    assert "Yes/phone" in ids and "Yes/camera" in ids
    assert not any(i.startswith("Yes/.") or "MACOSX" in i for i in train.ids)
    for index in range(len(train)):  # every listed file decodes: no AppleDouble file fails mid-epoch
        assert data.dataset("train")[index]["image"].shape == (3, 32, 32)
    lines = [r for r in caplog.records if str(yes) in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.WARNING
    assert "2 hidden file(s)" in lines[0].getMessage() and "__MACOSX" in lines[0].getMessage()
    assert ".heic ×1" in lines[0].getMessage()


def test_lister_ignores_hidden_files_in_every_reader(tmp_path):
    for name in ("ISIC_0000001.jpg", "ISIC_0000002.JPG", "ISIC_0000003.Png", "._ISIC_0000001.jpg", ".hidden.png",
                 "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in list_images(tmp_path)] == ["ISIC_0000001.jpg", "ISIC_0000002.JPG", "ISIC_0000003.Png"]


# --- case 4: upper-case extensions ---------------------------------------------------------------------------------

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


# --- case 8: EXIF orientation ---------------------------------------------------------------------------------------

def _sideways(path, values, **save):
    exif = Image.Exif()
    exif[ORIENTATION] = 6  # "rotate 90° clockwise to display", what a phone held upright writes
    Image.fromarray(values).save(path, exif=exif, **save)


def test_exif_orientation_is_applied_to_images_and_masks(tmp_path):
    stored = np.zeros((16, 32, 3), np.uint8)  # 32 wide, 16 high as stored; the left half dark
    stored[:, 16:] = 250
    _sideways(tmp_path / "photo.jpg", stored, quality=95)
    mask = np.zeros((16, 32), np.uint8)
    mask[:, :16] = 255  # the lesion on the stored left half
    _sideways(tmp_path / "photo_segmentation.png", mask)
    image = load_rgb(tmp_path / "photo.jpg")
    assert image.shape == (32, 16, 3) and image_size(tmp_path / "photo.jpg") == (32, 16)  # upright: portrait
    assert image[:16].mean() < 20 and image[16:].mean() > 230  # stored left (dark) is now the top
    assert load_rgb(tmp_path / "photo.jpg", max_side=16).shape == (16, 8, 3)
    upright_mask = load_mask(tmp_path / "photo_segmentation.png", image.shape[:2])  # no size mismatch
    assert (upright_mask[:16] == 255).all() and (upright_mask[16:] == 0).all()  # turned with its image


# --- case 9: every listed mask exists at set-up -----------------------------------------------------------------------

def test_isic2016_missing_mask_fails_at_setup_naming_it(copy_of):
    root = copy_of("isic2016")
    masks = root / "ISBI2016_ISIC_Part1_Training_GroundTruth"
    lost = sorted(masks.iterdir())[0]
    lost.unlink()
    data = ISIC2016DataModule(str(root), val_size=4, with_masks=True, image_size=32, num_workers=0)
    with pytest.raises(DataError, match=rf"1 mask\(s\) are missing from '.*{masks.name}' \(e\.g\. {lost.name}\)"):
        data.setup("fit")


def test_missing_mask_is_skipped_with_a_log_under_on_bad_image_skip(copy_of, caplog):
    root = copy_of("isic2016")
    lost = sorted((root / "ISBI2016_ISIC_Part1_Training_GroundTruth").iterdir())[0]
    lost.unlink()
    data = ISIC2016DataModule(str(root), val_size=4, with_masks=True, on_bad_image="skip", num_workers=0)
    with caplog.at_level(logging.WARNING):
        ids = data.table("train").ids + data.table("val").ids
    assert lost.name.removesuffix("_Segmentation.png") not in ids
    assert "left out 1 of" in caplog.text
