"""Albumentations pipelines from config: a preset name or an explicit list of transforms.

A pipeline is given either as a preset name (``"default"``, ``"light"``, ``"none"``) or as a
list of one-key mappings naming an albumentations class and its arguments, e.g.::

    train_transforms:
      - RandomResizedCrop: {size: [224, 224], scale: [0.5, 1.0]}
      - HorizontalFlip: {p: 0.5}

ImageNet normalisation and the conversion to a CHW tensor are always appended, so configs
list only the augmentation itself.
"""

from __future__ import annotations

from typing import Any

import albumentations as A
from albumentations.pytorch import ToTensorV2

from dermlab.errors import DataError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

TransformSpec = str | list[dict[str, Any]] | None


def _preset(name: str, size: int, train: bool) -> list[A.BasicTransform]:
    if not train or name == "none":
        return [A.Resize(size, size)]
    if name == "light":
        return [A.Resize(size, size), A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5)]
    if name == "default":
        # Dermoscopy has no canonical orientation: flips and 90° rotations are label-preserving.
        return [
            A.RandomResizedCrop(size=(size, size), scale=(0.6, 1.0), ratio=(0.8, 1.25)),
            A.HorizontalFlip(p=0.5),
            A.VerticalFlip(p=0.5),
            A.RandomRotate90(p=0.5),
            A.ColorJitter(brightness=0.15, contrast=0.15, saturation=0.1, hue=0.02, p=0.5),
        ]
    raise DataError(f"unknown transform preset {name!r}; use 'default', 'light', 'none' or a list of "
                    "{AlbumentationsClass: {arg: value}} entries.")


def _from_list(spec: list[dict[str, Any]]) -> list[A.BasicTransform]:
    transforms = []
    for entry in spec:
        if not isinstance(entry, dict) or len(entry) != 1:
            raise DataError(f"transform entry {entry!r} must be a single {{ClassName: {{args}}}} mapping.")
        (name, kwargs), = entry.items()
        cls = getattr(A, name, None)
        if cls is None:
            raise DataError(f"albumentations has no transform named {name!r}.")
        transforms.append(cls(**(kwargs or {})))
    return transforms


def build_transforms(spec: TransformSpec, size: int, train: bool) -> A.Compose:
    """Compose the pipeline for one split: augmentations from ``spec``, then normalise + to tensor."""
    steps = _preset(spec or "none", size, train) if isinstance(spec, str) or spec is None else _from_list(spec)
    return A.Compose([*steps, A.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD), ToTensorV2()])
