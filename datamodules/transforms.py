"""Albumentations pipelines from config: a preset name or an explicit list of transforms.

A pipeline is given as a preset name (``"default"``, ``"light"``, ``"none"``), as the path of a
yaml file holding a list (the papers' pipelines live in ``experiments/base/augment/``), or as a
list of one-key mappings naming an albumentations class (or :class:`ShadesOfGrey`) and its
arguments, e.g.::

    train_transforms:
      - RandomResizedCrop: {size: [224, 224], scale: [0.5, 1.0]}
      - HorizontalFlip: {p: 0.5}

Normalisation and the conversion to a CHW tensor are always appended, so configs list only the augmentation
itself. The mean / std are the backbone's own (its timm ``pretrained_cfg``; the datamodule takes them from the
attached LightningModule, see :mod:`lightning_modules.normalisation`), ImageNet's when no model is attached.
Masks given with ``masks=[...]`` follow the geometric steps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import albumentations as A
import numpy as np
import torch
import yaml
from albumentations.pytorch import ToTensorV2
from typing_extensions import override

from datamodules.patches import CentralScalePatch
from datamodules.quarter_turns import RandomQuarterTurn
from dermlab.errors import DataError


class Normalisation(NamedTuple):
    """Per-channel (R, G, B) mean and std of images scaled to [0, 1]: x' = (x / 255 − mean) / std."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]


IMAGENET = Normalisation((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))

#: A pipeline as a config gives it (see above), a preset name or yaml path, a list of one-key mappings, or None
#: (``"none"``).
TransformSpec = str | list[dict[str, Any]] | None
REPO = Path(__file__).resolve().parents[1]


class ShadesOfGrey(A.ImageOnlyTransform):
    """Shades-of-grey colour constancy (Finlayson & Trezzi 2004), as Barata et al. 2014 use on dermoscopy.

    The illuminant of channel c is e_c = (mean_x I_c(x)^p)^(1/p); with e scaled to unit length,
    each channel is multiplied by 1 / (√3 · e_c), so a grey-world image is left unchanged.
    ``power`` = 6 is the value Barata et al. found best (the ``weighting`` paper's colour normalisation).
    """

    def __init__(self, power: float = 6.0, p: float = 1.0):
        super().__init__(p=p)
        self.power = power

    @override
    def apply(self, img: np.ndarray, **params: Any) -> np.ndarray:
        values = img.astype(np.float64)
        illuminant = np.power(np.mean(np.power(values, self.power), axis=(0, 1)), 1.0 / self.power)
        illuminant = illuminant / max(np.linalg.norm(illuminant), 1e-12)
        corrected = values / (np.sqrt(3.0) * np.maximum(illuminant, 1e-12))
        return np.clip(corrected, 0, 255).astype(img.dtype)

    @override
    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("power",)


CUSTOM = {"ShadesOfGrey": ShadesOfGrey, "CentralScalePatch": CentralScalePatch,
          "RandomQuarterTurn": RandomQuarterTurn}


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


def _from_list(spec: list[dict[str, Any]], size: int | None = None) -> list[A.BasicTransform]:
    """Transforms from ``{Class: {arg: value}}`` entries; the value ``image_size`` stands for the input side
    (``(size, size)`` for a ``size`` argument)."""
    transforms = []
    for entry in spec:
        if not isinstance(entry, dict) or len(entry) != 1:
            raise DataError(f"transform entry {entry!r} must be a single {{ClassName: {{args}}}} mapping.")
        (name, kwargs), = entry.items()
        cls = CUSTOM.get(name) or getattr(A, name, None)
        if cls is None:
            raise DataError(f"albumentations has no transform named {name!r}.")
        kwargs = {k: ((size, size) if k == "size" else size) if v == "image_size" and size else v
                  for k, v in (kwargs or {}).items()}
        transforms.append(cls(**kwargs))
    return transforms


def _from_file(spec: str) -> list[dict[str, Any]]:
    """A yaml list of transforms; relative paths are tried from the working directory, then the repository."""
    path = Path(spec).expanduser()
    if not path.is_file() and (REPO / path).is_file():
        path = REPO / path
    if not path.is_file():
        raise DataError(f"transform file '{spec}' does not exist.")
    entries = yaml.safe_load(path.read_text())
    if not isinstance(entries, list):
        raise DataError(f"transform file '{path}' must hold a yaml list of {{ClassName: {{args}}}} entries.")
    return entries


def self_contained(spec: TransformSpec) -> TransformSpec:
    """``spec`` without reference to a file: a yaml file's list of entries read in (what an exported model package
    records), a preset name or a list as it is.

    Raises:
        DataError: a yaml file that does not exist or holds no list.
    """
    if isinstance(spec, str) and spec.endswith((".yaml", ".yml")):
        return _from_file(spec)
    return spec


def build_transforms(spec: TransformSpec, size: int, train: bool, resize_to: tuple[int, int] | None = None,
                     normalisation: Normalisation = IMAGENET) -> A.Compose:
    """Compose the pipeline for one split: an optional first resize of the whole image to ``resize_to``
    (height, width), augmentations from ``spec``, then normalise with ``normalisation`` + to tensor."""
    if isinstance(spec, str) and spec.endswith((".yaml", ".yml")):
        spec = _from_file(spec)
    steps = _preset(spec or "none", size, train) if isinstance(spec, str) or spec is None else _from_list(spec, size)
    first = [A.Resize(*resize_to, interpolation=1)] if resize_to else []
    return A.Compose([*first, *steps, A.Normalize(mean=normalisation.mean, std=normalisation.std), ToTensorV2()])


def denormalise(images: torch.Tensor, normalisation: Normalisation = IMAGENET) -> np.ndarray:
    """Undo the normalisation a pipeline ended with: (B, 3, H, W) tensor → (B, H, W, 3) floats in [0, 1]."""
    mean = torch.tensor(normalisation.mean, device=images.device)[:, None, None]
    std = torch.tensor(normalisation.std, device=images.device)[:, None, None]
    return (images.float() * std + mean).clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()


def renormalise(images: torch.Tensor, source: Normalisation, target: Normalisation) -> torch.Tensor:
    """(B, 3, H, W) images normalised with ``source`` re-expressed in ``target``'s statistics (for feeding one
    batch to networks pretrained with different ones)."""
    if source == target:
        return images
    as_tensor = lambda values: torch.tensor(values, device=images.device, dtype=images.dtype)[:, None, None]  # noqa: E731
    return (images * as_tensor(source.std) + as_tensor(source.mean) - as_tensor(target.mean)) / as_tensor(target.std)
