"""``datamodules/fingerprints.py``: the split audit's image fingerprints, cached, and of the pixels the suite
trains on."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from datamodules.fingerprints import FingerprintStore, exact_fingerprint, perceptual_fingerprint
from dermlab.files.io import load_rgb
from tests.helpers.images import gradient, gray


def test_a_16_bit_copy_has_the_fingerprints_of_its_8_bit_original(tmp_path):
    """The audit hashes the pixels the suite trains on: a 16-bit copy of an image is its exact and near duplicate."""
    values = gray(gradient(48, 64))
    eight, sixteen = tmp_path / "eight.png", tmp_path / "sixteen.png"
    Image.fromarray(values).save(eight)
    Image.fromarray(values.astype(np.uint16) * 257).save(sixteen)
    assert np.array_equal(load_rgb(sixteen), load_rgb(eight))
    assert exact_fingerprint(sixteen) == exact_fingerprint(eight)
    assert perceptual_fingerprint(sixteen) == perceptual_fingerprint(eight)
    store = FingerprintStore(tmp_path / "cache", workers=1)
    first, second = store.get([eight, sixteen], kind="phash")
    assert first == second is not None


def test_fingerprints_are_cached_and_follow_the_file(tmp_path, monkeypatch):
    from PIL import Image

    from datamodules import fingerprints

    path = tmp_path / "a.png"
    Image.fromarray(np.zeros((4, 5, 3), np.uint8)).save(path)
    store = FingerprintStore(tmp_path / "cache")
    first = store.get([path, tmp_path / "missing.png"])
    assert first[0] is not None and first[1] is None
    monkeypatch.setitem(fingerprints.COMPUTE, "exact", lambda p: pytest.fail("decoded again"))
    assert FingerprintStore(tmp_path / "cache").get([path]) == first[:1]  # a second set-up decodes nothing
    monkeypatch.undo()
    Image.fromarray(np.full((4, 5, 3), 7, np.uint8)).save(path)
    assert store.get([path]) != first[:1]  # a changed file is hashed again
