"""Any images a user has — files, folders of files, or decoded arrays — through a run's evaluation pipeline, not a
challenge layout: what ``dermlab classify`` and :func:`dermlab.load_model`'s ``predict`` read. Free of Lightning.

Folders are searched recursively with the suite's one lister (:func:`dermlab.files.listing.list_images`: any case
of the extension, hidden files and ``__MACOSX`` skipped); files named on their own are taken whatever their name.
An image that cannot be decoded does not stop the others: the item says so, and
:func:`skip_unreadable` (the DataLoader's ``collate_fn``) sets it aside so the caller can name it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import default_collate

from datamodules.datasets.image_dataset import ImageTableDataset
from datamodules.datasets.table import ImageTable
from dermlab.errors import DataError
from dermlab.files.io import load_rgb, rgb_array
from dermlab.files.listing import list_images

log = logging.getLogger(__name__)

#: An image given to :class:`ImageInputsDataset`: a file's path, a PIL image or an array
#: (:func:`dermlab.files.io.rgb_array`).
ImageInput = str | Path | np.ndarray | Image.Image


def collect_images(inputs: Sequence[str | Path]) -> list[Path]:
    """The image files of ``inputs``, in the order given: a file as it is, a folder's images recursively (sorted
    by path within it).

    Raises:
        DataError: an input that does not exist (named), or inputs holding no image at all.
    """
    found: list[Path] = []
    for item in inputs:
        path = Path(item).expanduser()
        if path.is_dir():
            folders = [path, *sorted(p for p in path.rglob("*") if p.is_dir())]
            images = sorted((image for folder in folders for image in list_images(folder)), key=str)
            if not images:
                log.warning("'%s' holds no image file", item)
            found += images
        elif path.is_file():
            found.append(path)
        else:
            raise DataError(f"'{item}' does not exist (give image files or folders holding them)")
    seen: set[Path] = set()
    unique = [path for path in found if not (path.resolve() in seen or seen.add(path.resolve()))]  # first kept
    if len(unique) < len(found):
        log.info("%d file(s) given more than once are classified once", len(found) - len(unique))
    found = unique
    if not found:
        raise DataError(f"no image file in {', '.join(map(str, inputs))} (images are .jpg, .jpeg, .png, .webp, "
                        ".bmp, .tif or .tiff files)")
    return found


class ImageInputsDataset(ImageTableDataset):
    """Images from files or arrays, each through ``transform`` with the run's views or crops (the arguments of
    :class:`~datamodules.datasets.image_dataset.ImageTableDataset`, whose seeding of random views they share).

    Args:
        images: paths, PIL images or arrays ((H, W, 3) uint8 RGB; other modes are converted as files are,
            :func:`dermlab.files.io.rgb_array`).
        transform: the evaluation pipeline (:func:`datamodules.transforms.build_transforms`).
        max_side: files are decoded with their longer side at most this many pixels, as a run reading a cache of
            resized copies saw them (``max_side`` of the data module); arrays are used as they are.
        **views: ``views``, ``crops``, ``crop_size``, ``crop_positions``, ``seed``.

    Random views are keyed by each file's name (``sample_key: image``; an array's by its index in ``images``): a
    file gets the views the run's test gave the image of that name, wherever it is in ``images``.

    Each item is ``{"image": tensor, "index": i}``, or ``{"index": i, "error": message}`` for an image that cannot
    be decoded (:func:`skip_unreadable` sets those aside).
    """

    def __init__(self, images: Sequence[ImageInput], transform: Any, max_side: int | None = None, **views: Any):
        self.inputs = list(images)
        for i, image in enumerate(self.inputs):
            if not isinstance(image, (str, Path, np.ndarray, Image.Image)):
                raise DataError(f"image {i} is a {type(image).__name__}: give a path, a PIL image or a NumPy array "
                                "(H, W, 3) uint8 RGB (a tensor: tensor.permute(1, 2, 0).numpy() of 0–255 values)")
        names = [str(image) if isinstance(image, (str, Path)) else str(i) for i, image in enumerate(self.inputs)]
        paths = [Path(name) for name in names]
        super().__init__(ImageTable(names, paths, np.full(len(names), -1), Path("<images>")), transform,
                         sample_key="image", **views)
        self.max_side = max_side

    def _read(self, index: int) -> tuple[np.ndarray, list[np.ndarray]]:
        image = self.inputs[index]
        if isinstance(image, (np.ndarray, Image.Image)):
            return rgb_array(image, f"image {index}"), []
        return load_rgb(Path(image), max_side=self.max_side, listed=False), []

    def __getitem__(self, index: int) -> dict[str, Any]:
        try:
            item = super().__getitem__(index)
        except DataError as error:
            return {"index": index, "error": str(error)}
        return {"image": item["image"], "index": index}


def skip_unreadable(items: list[dict[str, Any]]) -> dict[str, Any]:
    """A DataLoader ``collate_fn``: the readable items batched (``image`` (B, ...), ``index`` (B,)), the others as
    ``errors``: a list of (index, message)."""
    good = [item for item in items if "error" not in item]
    batch = default_collate(good) if good else {"image": None, "index": torch.zeros(0, dtype=torch.long)}
    batch["errors"] = [(item["index"], item["error"]) for item in items if "error" in item]
    return batch
