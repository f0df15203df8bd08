"""``dermlab/files/hdf5.py``: images read from an HDF5 file as from the JPEG files packed into it, one handle per
DataLoader worker."""

from __future__ import annotations

import os
import pickle

import numpy as np
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from datamodules.cache import ImageCache
from dermlab.files.hdf5 import HDF5Image, handle, opened_here
from dermlab.files.io import image_size, load_rgb
from tests.helpers.isic2024 import CONTAINER, ids_of


def test_hdf5_images_give_the_pixels_of_the_jpeg_files_they_were_packed_from(synthetic, tmp_path):
    root = synthetic("isic2024")
    cache = ImageCache(tmp_path / "cache", max_side=20)
    for image_id in ids_of(root):
        stored, file = HDF5Image(root / CONTAINER, image_id), root / "train-image/image" / f"{image_id}.jpg"
        with Image.open(file) as reference:
            pixels = np.asarray(reference.convert("RGB"))  # Pillow alone, the file on disk
        assert pixels.shape == (32, 32, 3)
        assert np.array_equal(load_rgb(stored), pixels)
        assert np.array_equal(load_rgb(stored, max_side=20), load_rgb(file, max_side=20))
        assert np.array_equal(cache.image(stored), load_rgb(file, max_side=20))
        assert image_size(stored) == (32, 32)
    member = HDF5Image(root / CONTAINER, image_id)
    assert member.is_file() and member.name == image_id and member.parent == root / CONTAINER
    assert not HDF5Image(root / CONTAINER, "ISIC_9999999").is_file()
    assert not HDF5Image(tmp_path / "absent.hdf5", image_id).is_file()
    copy = pickle.loads(pickle.dumps(member))  # DataLoader workers started by spawn receive it pickled
    assert type(copy) is HDF5Image and copy == member and np.array_equal(load_rgb(copy), pixels)


class Reads(Dataset):
    """Each item: the process that read it, the HDF5 files that process holds a handle on, and the pixels."""

    def __init__(self, paths):
        self.paths = paths

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        pixels = load_rgb(self.paths[index])
        return {"pid": os.getpid(), "opened": opened_here(), "pixels": pixels}


def test_each_dataloader_worker_opens_its_own_handle(synthetic):
    root = synthetic("isic2024")
    container = root / CONTAINER
    paths = [HDF5Image(container, i) for i in ids_of(root)]
    load_rgb(paths[0])  # the main process opens its handle before the workers start
    parent = handle(container)
    items = list(DataLoader(Reads(paths), batch_size=None, num_workers=2))
    workers = {item["pid"] for item in items}
    assert len(workers) == 2 and os.getpid() not in workers
    assert all(str(container) in item["opened"] for item in items)  # each worker opened its own
    for path, item in zip(paths, items, strict=True):
        assert np.array_equal(item["pixels"], load_rgb(root / "train-image/image" / f"{path.name}.jpg"))
    assert handle(container) is parent and parent.id.valid  # the main process's handle is untouched
