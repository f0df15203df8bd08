"""Preprocessing cache: resized once, reused, never stale; `dermlab prepare` fills it."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from datamodules import ISIC2018SegmentationDataModule
from datamodules.cache import ImageCache
from datamodules.io import fit_side
from dermlab.cli import main


def test_fit_side_keeps_aspect_and_never_enlarges():
    assert fit_side(1500, 1100, 512) == (512, 375)
    assert fit_side(300, 200, 512) == (300, 200)


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


def test_changed_source_or_setting_is_never_stale(tmp_path):
    source = tmp_path / "a.jpg"
    Image.fromarray(np.full((300, 400, 3), 20, np.uint8)).save(source)
    cache = ImageCache(tmp_path / "cache", max_side=100)
    assert cache.image(source).mean() < 40
    Image.fromarray(np.full((200, 200, 3), 230, np.uint8)).save(source)
    os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 10**9))
    refreshed = cache.image(source)
    assert refreshed.shape == (100, 100, 3) and refreshed.mean() > 200
    assert ImageCache(tmp_path / "cache", max_side=50).image(source).shape == (50, 50, 3)


def test_prepare_fills_the_cache_and_the_datamodule_reads_it(synthetic, tmp_path, capsys):
    root = synthetic("isic2018_task1")
    main(["prepare", "--dataset", "isic2018_task1", "--root", str(root), "--max-side", "16",
          "--cache-dir", str(tmp_path / "cache")])
    assert '"train": 24' in capsys.readouterr().out
    entries = list((tmp_path / "cache" / "max16").rglob("*.png"))
    assert len(entries) == 2 * (24 + 8 + 12)  # an image and a mask per case
    data = ISIC2018SegmentationDataModule(str(root), cache_dir=str(tmp_path / "cache"), max_side=16,
                                          eval_transforms=[], num_workers=0)
    sample = data.dataset("val")[0]
    assert sample["image"].shape == (3, 12, 16) and sample["mask"].shape == (1, 12, 16)
    assert len(list((tmp_path / "cache" / "max16").rglob("*.png"))) == len(entries)  # nothing new written
