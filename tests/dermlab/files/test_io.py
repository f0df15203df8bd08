"""``dermlab/files/io.py``: every image kind read as RGB (or refused naming the file) on every read path, EXIF
orientation, and the sizes of resized copies."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image

from datamodules.fingerprints import perceptual_fingerprint
from dermlab.errors import DataError
from dermlab.files.io import _CONVERTED_MODES, fit_side, image_size, load_rgb
from dermlab.files.masks import load_mask
from tests.helpers.images import KINDS, data, first_val_image, gradient, replace_image


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("cached", [False, True], ids=["original", "cache"])
def test_every_image_kind_reads_as_rgb_in_a_batch_and_the_cache(broken_root, tmp_path, kind, cached):
    suffix, write, expected_of = KINDS[kind]
    pixels = gradient()
    path = replace_image(first_val_image(broken_root), suffix, lambda p: write(p, pixels))
    expected = expected_of(path, pixels)
    module = data(broken_root, **({"cache_dir": str(tmp_path / "cache"), "max_side": 32} if cached else {}))
    module.setup("fit")
    dataset = module.dataset("val")
    index = module.table("val").ids.index(path.stem)
    image, _ = dataset._read(index)  # what the transforms get: the file's pixels, or the cached copy (32 px: the same)
    assert image.dtype == np.uint8 and image.shape == (24, 32, 3)
    assert np.array_equal(image, expected)
    batch = next(iter(module.val_dataloader()))
    assert batch["image"].shape == (8, 3, 32, 32) and path.stem in batch["image_id"]
    assert bool(batch["image"].isfinite().all())


BAD = {  # kind -> (suffix, writer, what the message says)
    "zero-byte file": (".jpg", lambda p: p.write_bytes(b""), r"is empty \(0 bytes\), as after a download or copy"),
    "web page under a .jpg name": (".jpg", lambda p: p.write_bytes(b"\n<!DOCTYPE html><html>Access denied</html>"),
                                   r"holds text, not an image \(it begins '<!DOCTYPE html><html>Acc'\): a web page"),
    "32-bit float TIFF": (".tif", lambda p: Image.fromarray(np.full((24, 32), 0.5, np.float32)).save(p),
                          r"holds 32-bit floating-point pixels \(PIL mode F\), which have no agreed 8-bit scale"),
    "32-bit integers above 16 bits": (".tif", lambda p: Image.fromarray(np.full((24, 32), 70000, np.int32)).save(p),
                                      r"holds 32-bit values from 70000 to 70000, outside the 16-bit range"),
}


@pytest.mark.parametrize("kind", list(BAD))
@pytest.mark.parametrize("cached", [False, True], ids=["original", "cache"])
def test_an_image_that_is_not_fine_stops_the_batch_naming_the_file(broken_root, tmp_path, kind, cached):
    suffix, write, said = BAD[kind]
    path = replace_image(first_val_image(broken_root), suffix, write)
    module = data(broken_root, **({"cache_dir": str(tmp_path / "cache"), "max_side": 32} if cached else {}))
    if kind == "zero-byte file":  # found at set-up, by the stat that finds absent images
        with pytest.raises(DataError, match=rf"are empty \(0 bytes\), e.g. '{path}'"):
            module.setup("fit")
        with pytest.raises(DataError, match=f"image '{path}' {said}"):  # and by the reader, were it reached
            load_rgb(path)
    else:
        module.setup("fit")
        with pytest.raises(DataError, match=f"image '{path}' {said}"):
            next(iter(module.val_dataloader()))
    with pytest.raises(DataError, match=f"'{path}'"):  # the split audit's fingerprints say it the same way
        perceptual_fingerprint(path)
    skipped = data(broken_root, on_bad_image="skip")
    skipped.setup("fit")
    assert path.stem not in skipped.table("val").ids and len(skipped.table("val")) == 7


def test_the_image_size_of_an_unreadable_file_names_it(tmp_path):
    empty, page = tmp_path / "empty.jpg", tmp_path / "page.jpg"
    empty.write_bytes(b"")
    page.write_bytes(b"<html></html>")
    with pytest.raises(DataError, match=f"image '{empty}' is empty"):
        image_size(empty)
    with pytest.raises(DataError, match=f"image '{page}' holds text"):
        image_size(page)


@pytest.mark.parametrize("mode", ["L", "RGBA", "I;16", "CMYK", "P"])
def test_other_image_modes_are_converted_and_said_once(tmp_path, caplog, mode):
    gradient = np.linspace(0, 1, 12 * 16).reshape(12, 16)
    if mode == "I;16":
        image = Image.fromarray((gradient * 65535).astype(np.uint16))
    else:
        image = Image.fromarray((gradient * 255).astype(np.uint8)).convert(mode)
    path = tmp_path / f"x.{'tif' if mode == 'CMYK' else 'png'}"
    image.save(path)
    _CONVERTED_MODES.discard(image.mode)
    with caplog.at_level(logging.WARNING):
        first, second = load_rgb(path), load_rgb(path)
    assert first.shape == (12, 16, 3) and first.dtype == np.uint8 and np.array_equal(first, second)
    assert caplog.text.count(f"converting {image.mode} images") == 1
    if mode == "I;16":  # 16-bit scaled to 8-bit, not clipped
        assert first.max() == 255 and first[0, 0, 0] == 0


def test_fit_side_keeps_aspect_and_never_enlarges():
    assert fit_side(1500, 1100, 512) == (512, 375)
    assert fit_side(300, 200, 512) == (300, 200)


ORIENTATION = 0x0112


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
