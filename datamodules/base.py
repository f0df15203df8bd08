"""Shared LightningDataModule: an image table per split → dataset, transforms and loaders.

Each data set subclass only maps its official folder and CSV layout to an :class:`ImageTable`
per split (``read_split``) and names its classes; everything else lives here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import lightning.pytorch as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from datamodules.io import load_rgb
from datamodules.transforms import TransformSpec, build_transforms

SPLITS = ("train", "val", "test")


@dataclass
class ImageTable:
    """The images of one split: ids, paths and integer labels (-1 where unknown)."""

    ids: list[str]
    paths: list[Path]
    labels: np.ndarray
    source: Path  # the CSV (or folder) the table came from, named in error messages

    def __len__(self) -> int:
        return len(self.ids)


class ImageTableDataset(Dataset):
    """Decodes the images of an :class:`ImageTable` and applies an albumentations pipeline."""

    def __init__(self, table: ImageTable, transform):
        self.table, self.transform = table, transform

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, index: int) -> dict:
        image = load_rgb(self.table.paths[index])
        return {
            "image": self.transform(image=image)["image"],
            "label": int(self.table.labels[index]),
            "image_id": self.table.ids[index],
        }


class SkinDataModule(L.LightningDataModule):
    """Base for every data set of the suite.

    Args:
        root: folder holding the data set exactly as downloaded (see the README per data set).
        image_size: side of the square network input in pixels.
        batch_size: images per batch (per device under DDP).
        num_workers: DataLoader worker processes.
        train_transforms: preset name or list of albumentations entries for training.
        eval_transforms: the same for validation, test and predict.
        predict_split: which split ``dermlab predict`` writes a submission for.
    """

    class_names: tuple[str, ...] = ()

    def __init__(
        self,
        root: str,
        image_size: int = 224,
        batch_size: int = 32,
        num_workers: int = 2,
        train_transforms: TransformSpec = "default",
        eval_transforms: TransformSpec = "none",
        predict_split: str = "test",
    ):
        super().__init__()
        self.root = Path(root).expanduser()
        self.image_size, self.batch_size, self.num_workers = image_size, batch_size, num_workers
        self.train_transforms, self.eval_transforms = train_transforms, eval_transforms
        if predict_split not in SPLITS:
            raise ValueError(f"predict_split must be one of {SPLITS}, got {predict_split!r}")
        self.predict_split = predict_split
        self.tables: dict[str, ImageTable] = {}

    # --- what a subclass provides -------------------------------------------------------
    def read_split(self, split: str) -> ImageTable:
        """Map the official files of ``split`` to an ImageTable, validating them."""
        raise NotImplementedError

    # --- shared behaviour ---------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def table(self, split: str) -> ImageTable:
        """The validated table of ``split``, read once."""
        if split not in self.tables:
            self.tables[split] = self.read_split(split)
        return self.tables[split]

    @property
    def class_counts(self) -> torch.Tensor:
        """Training images per class, for class-weighted losses and samplers."""
        labels = self.table("train").labels
        return torch.bincount(torch.as_tensor(labels), minlength=self.num_classes)

    def setup(self, stage: str | None = None) -> None:
        needed = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",),
                  "predict": (self.predict_split,)}.get(stage or "", SPLITS)
        for split in needed:
            self.table(split)

    def dataset(self, split: str) -> ImageTableDataset:
        transform = build_transforms(self.train_transforms if split == "train" else self.eval_transforms,
                                     self.image_size, train=split == "train")
        return ImageTableDataset(self.table(split), transform)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        return DataLoader(
            self.dataset(split), batch_size=self.batch_size, shuffle=shuffle, drop_last=False,
            num_workers=self.num_workers, persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.predict_split, shuffle=False)

    def submission(self, ids: list[str], probabilities: np.ndarray):
        """The official submission table (a pandas DataFrame) for these predictions."""
        raise NotImplementedError(f"{type(self).__name__} does not define an official submission format")
