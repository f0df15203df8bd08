"""A torch ``Dataset`` over an :class:`~datamodules.datasets.table.ImageTable`: decoding, one albumentations
pipeline for image and masks, repeats, views and crops. Free of Lightning: usable in a plain PyTorch loop."""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from datamodules.cache import ImageCache
from datamodules.crops import ordered_crops, random_crops
from datamodules.datasets.table import ImageTable
from dermlab.errors import DataError
from dermlab.files.io import image_size, load_rgb
from dermlab.files.masks import load_mask
from dermlab.runtime.seeding import derive, name_key

if TYPE_CHECKING:
    import albumentations as A


class ImageTableDataset(Dataset):
    """Decodes images (and masks) of an :class:`~datamodules.datasets.table.ImageTable` and applies one
    albumentations pipeline jointly.

    ``repeats`` > 1 serves every image that many times per epoch, each time through the (random)
    pipeline — e.g. the ``arl`` paper's 60 random patches per image, drawn online. ``views`` > 1 returns
    that many transformed copies of one image stacked as (views, C, H, W): the 9 test patches of ``arl``,
    whose predictions the module averages. ``crops`` > 0 cuts that many ordered ``crop_size`` crops from the
    transformed full-size image instead (``patch``: (N_C, C, s, s), see :mod:`datamodules.crops`);
    ``crop_positions: random`` cuts them at uniform random positions instead (``patch`` Multi-Crop training).

    Before each sample the pipeline's random generators are seeded from (``seed``, epoch, position), the epoch
    read from epoch-tagged indices (``epoch * len(dataset) + position``, as the suite's training samplers yield
    them; a plain index is epoch 0), so what an image gets depends on the run's seed and its place in the epoch
    only — not on the DataLoader workers. ``sample_key: image`` puts the image's file name (its stem,
    :func:`~dermlab.runtime.seeding.name_key`) in place of the position: an evaluation pipeline's random views
    (``arl``'s test patches) are then the same for an image whichever list it is in — the test split, or the
    files ``dermlab classify`` is given. With ``seed=None`` (a plain PyTorch loop) each sample draws its seed from
    torch's generator instead.

    Args:
        table: the images (and masks) to serve.
        transform: an albumentations pipeline ending in ``ToTensorV2``, applied to the image and its masks together
            (:func:`datamodules.transforms.build_transforms`).
        cache: where resized copies of the images come from (:class:`~datamodules.cache.ImageCache`); None: the
            original files are decoded every time.
        repeats: times each image is served per epoch (< 1 counts as 1).
        views: transformed copies of each image per item (< 1 counts as 1).
        crops: ordered or random crops per item (0: the whole image).
        crop_size: the side of each crop in pixels.
        seed: the seed of the pipeline's random generators (with the epoch and position of each item); None:
            each item draws its pipeline's seed from torch's generator instead, so a plain PyTorch loop gets fresh
            augmentation every epoch and in every DataLoader worker, reproducible with ``torch.manual_seed``.
        crop_positions: ``ordered`` (fixed positions, :func:`~datamodules.crops.ordered_crops`) or ``random``
            (uniform, :func:`~datamodules.crops.random_crops`) crop positions.
        sample_key: what tells the samples' draws apart besides the seed and epoch: ``position`` (in the epoch:
            training, where an image is served several times per epoch) or ``image`` (its file name's stem:
            evaluation).
        metadata: (N, F) encoded patient metadata, one row per image of ``table``
            (:mod:`datamodules.metadata`); each item then carries its row as ``metadata`` (float32, (F,)).

    Raises:
        ValueError: several views or crops for a table with masks, both views and crops, an unknown
            ``crop_positions`` or ``sample_key``.
    """

    def __init__(self, table: ImageTable, transform: A.Compose, cache: ImageCache | None = None, repeats: int = 1,
                 views: int = 1, crops: int = 0, crop_size: int = 224, seed: int | None = 0,
                 crop_positions: Literal["ordered", "random"] = "ordered",
                 sample_key: Literal["position", "image"] = "position", metadata: np.ndarray | None = None):
        if (views > 1 or crops) and table.masks is not None:
            raise ValueError("several views or crops per image are for classification; this table has masks")
        if views > 1 and crops:
            raise ValueError(f"give either several random views ({views}) or ordered crops ({crops}), not both")
        self.table, self.transform, self.cache = table, transform, cache
        self.repeats, self.views = max(1, repeats), max(1, views)
        if crop_positions not in ("ordered", "random"):
            raise ValueError(f"crop_positions must be ordered or random, got {crop_positions!r}")
        self.crops, self.crop_size, self.crop_positions = crops, crop_size, crop_positions
        if sample_key not in ("position", "image"):
            raise ValueError(f"sample_key must be position or image, got {sample_key!r}")
        self.seed, self.sample_key = seed, sample_key
        if metadata is not None and len(metadata) != len(table):
            raise ValueError(f"{len(metadata)} metadata rows for {len(table)} images")
        self.metadata = metadata

    def __len__(self) -> int:
        return len(self.table) * self.repeats

    def _read(self, index: int) -> tuple[np.ndarray, list[np.ndarray]]:
        path = self.table.paths[index]
        mask_paths = self.table.masks[index] if self.table.masks is not None else []
        if self.cache is None:
            image = load_rgb(path)
            return image, [load_mask(m, image.shape[:2]) for m in mask_paths]
        return self.cache.image(path), [self.cache.mask(m, path) for m in mask_paths]

    def _seed_pipeline(self, epoch: int, position: int) -> list[int]:
        """Seed the pipeline for the item at ``position`` of ``epoch``; returns the key its crops are drawn from."""
        if self.seed is None:  # a plain loop: indices carry no epoch, so torch's generator tells the draws apart
            drawn = int(torch.randint(0, 2**62, ()).item())
            key = [drawn % 2**32, drawn >> 32]
            self.transform.set_random_state(np.random.default_rng(key), random.Random(drawn))
            return key
        sample = ([position] if self.sample_key == "position"
                  else list(name_key(Path(self.table.paths[position % len(self.table)]).stem)))
        key = [self.seed % 2**32, epoch, *sample]
        self.transform.set_random_state(np.random.default_rng(key), random.Random(derive(self.seed, epoch, *sample)))
        return key

    def __getitem__(self, index: int) -> dict:
        epoch, position = divmod(index, len(self))
        key = self._seed_pipeline(epoch, position)
        index = position % len(self.table)
        image, masks = self._read(index)
        if self.views > 1:
            out, sample = {"image": torch.stack([self.transform(image=image)["image"] for _ in range(self.views)])}, {}
        elif masks:
            out = self.transform(image=image, masks=masks)
            sample = {"mask": torch.stack([torch.as_tensor(np.asarray(m)) for m in out["masks"]]).float() / 255.0,
                      # (H, W) of the file (not of a cached copy): predicted masks are written at this size
                      "original_size": torch.tensor(image.shape[:2] if self.cache is None
                                                    else image_size(self.table.paths[index]))}
        else:
            out, sample = self.transform(image=image), {}
        if self.crops:
            try:
                out["image"] = (ordered_crops(out["image"], self.crops, self.crop_size)
                                if self.crop_positions == "ordered" else
                                random_crops(out["image"], self.crops, self.crop_size,
                                             np.random.default_rng([*key, 1])))
            except DataError as error:
                raise DataError(f"'{self.table.paths[index]}': {error}") from None
        weight = 1.0 if self.table.weights is None else float(self.table.weights[index])
        score_weights = self.table.extra.get("score_weight")
        if score_weights is not None:  # the official score weight: 0 leaves the image out of every metric
            sample["scored"] = bool(score_weights[index] != 0)
        if self.metadata is not None:
            sample["metadata"] = torch.from_numpy(self.metadata[index])
        return {"image": out["image"], "label": int(self.table.labels[index]), "weight": weight,
                "image_id": self.table.ids[index], **sample}
