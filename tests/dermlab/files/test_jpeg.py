"""OpenCV decodes full-size RGB JPEGs to exactly Pillow's pixels, upright; everything else stays with Pillow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from dermlab.errors import DataError
from dermlab.files import io
from dermlab.files.io import ORIENTATION_TAG, load_rgb
from dermlab.files.jpeg import decode_rgb_jpeg


def pillow_pixels(path) -> np.ndarray:
    """What Pillow alone gives: the reference the OpenCV path must match."""
    with Image.open(path) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))


def jpeg(tmp_path, name="a.jpg", turn=1, mode="RGB", **save) -> Path:
    """A 37×52 (odd, non-square, so every turn and chroma edge shows) JPEG of random texture."""
    pixels = np.random.default_rng(len(name)).integers(0, 256, (37, 52, 3), dtype=np.uint8)
    image = Image.fromarray(pixels).convert(mode)
    if turn != 1:
        info = image.getexif()
        info[ORIENTATION_TAG] = turn
        save["exif"] = info
    path = tmp_path / name
    image.save(path, quality=92, **save)
    return path


@pytest.mark.parametrize("turn", range(1, 9))
def test_every_exif_orientation_gives_pillows_upright_pixels(tmp_path, turn):
    path = jpeg(tmp_path, turn=turn)
    with Image.open(path) as image:
        fast = decode_rgb_jpeg(path, image, turn)
    assert fast is not None and fast.flags.c_contiguous
    assert np.array_equal(fast, pillow_pixels(path))
    assert np.array_equal(load_rgb(path), pillow_pixels(path))


@pytest.mark.parametrize("save", [{"subsampling": 0}, {"subsampling": 1}, {"subsampling": 2}, {"progressive": True}],
                         ids=["4:4:4", "4:2:2", "4:2:0", "progressive"])
def test_chroma_layouts_and_progressive_files_decode_identically(tmp_path, save):
    path = jpeg(tmp_path, **save)
    with Image.open(path) as image:
        assert np.array_equal(decode_rgb_jpeg(path, image, 1), pillow_pixels(path))


@pytest.mark.parametrize("mode", ["L", "CMYK"])
def test_grayscale_and_cmyk_jpegs_are_left_to_pillow(tmp_path, mode):
    path = jpeg(tmp_path, mode=mode)
    with Image.open(path) as image:
        assert decode_rgb_jpeg(path, image, 1) is None
    assert load_rgb(path).shape == (37, 52, 3)


def test_a_png_is_left_to_pillow(tmp_path):
    path = tmp_path / "a.png"
    Image.fromarray(np.zeros((4, 6, 3), np.uint8)).save(path)
    with Image.open(path) as image:
        assert decode_rgb_jpeg(path, image, 1) is None


def test_a_truncated_jpeg_is_left_to_pillow_which_names_it(tmp_path):
    path = jpeg(tmp_path)
    path.write_bytes(path.read_bytes()[:-40])
    with Image.open(path) as image:
        assert decode_rgb_jpeg(path, image, 1) is None
    with pytest.raises(DataError, match="a.jpg"):
        load_rgb(path)


def test_full_size_rgb_jpegs_take_the_opencv_path(tmp_path, monkeypatch):
    path = jpeg(tmp_path)
    calls = []
    monkeypatch.setattr(io, "decode_rgb_jpeg", lambda *args: calls.append(args) or None)
    assert np.array_equal(load_rgb(path), pillow_pixels(path))  # Pillow still decodes when OpenCV declines
    load_rgb(path, max_side=20)  # the reduced-scale (cache) path stays with Pillow's draft
    assert len(calls) == 1
