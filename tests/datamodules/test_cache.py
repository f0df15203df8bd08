"""Preprocessing cache (``datamodules/cache.py``): resized once, reused, never stale, and the same samples as the
originals."""

from __future__ import annotations

import hashlib
import logging
import os

import numpy as np
import pytest
import torch
from PIL import Image

from datamodules import ISIC2017DataModule
from datamodules.base import warn_if_cache_too_small
from datamodules.cache import FORMAT_VERSION, ImageCache
from dermlab.files.cache_keys import source_key
from dermlab.files.io import ORIENTATION_TAG, load_rgb


def textured(tmp_path, name="a.jpg", shape=(300, 400), seed=0, exif=None):
    """A JPEG of random texture (so that any lossy or shifted copy differs) with an optional EXIF orientation."""
    path = tmp_path / name
    pixels = np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    if exif:
        info = image.getexif()
        info[ORIENTATION_TAG] = exif
        image.save(path, quality=95, exif=info)
    else:
        image.save(path, quality=95)
    return path


def test_resized_once_then_served_from_the_cache(tmp_path):
    source = tmp_path / "a.jpg"
    Image.fromarray(np.full((300, 400, 3), 120, np.uint8)).save(source)
    cache = ImageCache(tmp_path / "cache", max_side=100)
    first = cache.image(source)
    assert first.shape == (75, 100, 3)
    entry = cache.entry(source, "rgb")
    assert entry.is_file()
    stamp = entry.stat().st_mtime_ns
    assert np.array_equal(cache.image(source), first) and entry.stat().st_mtime_ns == stamp  # read, not rewritten


@pytest.mark.parametrize("format", ["npy", "png"])
def test_cached_pixels_are_exactly_the_resized_original(tmp_path, format):
    source = textured(tmp_path, exif=6)  # stored sideways: the cached copy must be upright too
    expected = load_rgb(source, max_side=130)
    cache = ImageCache(tmp_path / "cache", max_side=130, format=format)
    made, served = cache.image(source), cache.image(source)
    assert expected.shape == (130, 98, 3)
    assert np.array_equal(made, expected) and np.array_equal(served, expected)
    assert cache.entry(source, "rgb").suffix == f".{format}"


def test_default_entries_are_raw_arrays_read_without_decoding(tmp_path):
    source = textured(tmp_path)
    cache = ImageCache(tmp_path / "cache", max_side=100)
    image = cache.image(source)
    stored = np.load(cache.entry(source, "rgb"), allow_pickle=False)
    assert stored.dtype == np.uint8 and np.array_equal(stored, image)


@pytest.mark.parametrize("format", ["npy", "png"])
def test_changed_source_or_setting_is_never_stale(tmp_path, format):
    source = tmp_path / "a.jpg"
    Image.fromarray(np.full((300, 400, 3), 20, np.uint8)).save(source)
    cache = ImageCache(tmp_path / "cache", max_side=100, format=format)
    assert cache.image(source).mean() < 40
    Image.fromarray(np.full((200, 200, 3), 230, np.uint8)).save(source)
    os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 10**9))
    refreshed = cache.image(source)
    assert refreshed.shape == (100, 100, 3) and refreshed.mean() > 200
    assert ImageCache(tmp_path / "cache", max_side=50, format=format).image(source).shape == (50, 50, 3)


def test_entries_of_the_older_png_layout_are_never_served(tmp_path):
    source = textured(tmp_path)
    root = tmp_path / "cache" / "max100"
    digest = hashlib.sha1(f"{source_key(source)}|100|rgb|v2".encode()).hexdigest()  # FORMAT_VERSION 2's key
    old = root / digest[:2] / f"{digest}.png"
    old.parent.mkdir(parents=True)
    Image.fromarray(np.zeros((75, 100, 3), np.uint8)).save(old)  # a wrong picture in the old place
    for format in ("npy", "png"):
        cache = ImageCache(tmp_path / "cache", max_side=100, format=format)
        assert np.array_equal(cache.image(source), load_rgb(source, max_side=100))
        assert cache.entry(source, "rgb").is_relative_to(root / f"v{FORMAT_VERSION}")


@pytest.mark.parametrize("format", ["npy", "png"])
def test_a_damaged_entry_is_made_anew(tmp_path, caplog, format):
    source = textured(tmp_path)
    cache = ImageCache(tmp_path / "cache", max_side=100, format=format)
    cache.image(source)
    entry = cache.entry(source, "rgb")
    entry.write_bytes(entry.read_bytes()[:100])  # cut short, as by a full disk
    with caplog.at_level(logging.WARNING):
        assert np.array_equal(cache.image(source), load_rgb(source, max_side=100))
    assert "damaged cache entry" in caplog.text
    assert np.array_equal(cache.image(source), load_rgb(source, max_side=100))  # rewritten whole


@pytest.mark.parametrize("format", ["npy", "png"])
@pytest.mark.parametrize("exif", [None, 6])
def test_cached_masks_stay_binary_and_aligned_with_their_image(tmp_path, format, exif):
    pixels = np.full((300, 400, 3), 220, np.uint8)
    pixels[60:180, 100:300] = 30  # a dark lesion
    values = np.zeros((300, 400), np.uint8)
    values[60:180, 100:300] = 255
    image_path, mask_path = tmp_path / "a.jpg", tmp_path / "a_mask.png"
    extra = {}
    if exif:
        info = Image.new("L", (1, 1)).getexif()
        info[ORIENTATION_TAG] = exif
        extra = {"exif": info}
    Image.fromarray(pixels).save(image_path, quality=95, **extra)
    Image.fromarray(values).save(mask_path, **extra)
    cache = ImageCache(tmp_path / "cache", max_side=130, format=format)
    image = cache.image(image_path)
    for mask in (cache.mask(mask_path, image_path), cache.mask(mask_path, image_path)):  # made, then served
        assert mask.shape == image.shape[:2]
        assert set(np.unique(mask)) == {0, 255}
        lesion, dark = mask == 255, image.mean(axis=2) < 125
        assert (lesion & dark).sum() / (lesion | dark).sum() > 0.95


def test_cached_and_original_images_go_through_the_same_pipeline(isic2017_root, tmp_path):
    """With copies no smaller than the originals (32 px), the cached path must give the very same samples."""
    plain = ISIC2017DataModule(str(isic2017_root), image_size=24, num_workers=0)
    cached = ISIC2017DataModule(str(isic2017_root), image_size=24, num_workers=0, max_side=64,
                                cache_dir=str(tmp_path / "cache"))
    for split in ("train", "val"):
        originals, copies = plain.dataset(split), cached.dataset(split)
        for index in (0, 5, len(originals) + 3):  # the last is an epoch-tagged index (epoch 1)
            assert torch.equal(originals[index]["image"], copies[index]["image"])
    assert any((tmp_path / "cache" / "max64").rglob("*.npy"))


def test_warns_when_cached_copies_are_smaller_than_the_pipeline_needs(tmp_path, caplog):
    assert not warn_if_cache_too_small(512, 299)
    with caplog.at_level(logging.WARNING):
        assert warn_if_cache_too_small(160, 224)
        ISIC2017DataModule(str(tmp_path), max_side=512, resize_to=(450, 600))  # patch's SPC size
    assert caplog.text.count("cached copies would be enlarged again") == 2 and "at least 600" in caplog.text
