"""The papers' views of an image, as one composable piece of the data modules: repeated random draws per epoch
(``arl``), several views at test time (``arl``), ordered or random crops (``patch``) and a first resize (``patch``).

:class:`ImageViews` holds these options and their checks, apart from what every data module needs; the shared base
(:class:`datamodules.base.SkinDataModule`) composes it, so any data set can take them (``--data.init_args.eval_views
9``), and :meth:`ImageViews.views_of` turns them into the arguments of
:class:`~datamodules.datasets.image_dataset.ImageTableDataset`. Free of Lightning.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

#: Where the training crops are cut (the ``train_crop_positions`` argument).
CropPositions = Literal["ordered", "random"]


class ImageViews:
    """The views and crops of each image a batch holds.

    Args:
        root: the data set's folder (passed on to the reader).
        train_repeats: each training image is drawn this many times per epoch, through the random
            training pipeline each time (``arl``: 60 random centre patches per image).
        eval_views: validation / test / predict images go through the evaluation pipeline this many
            times; the batch is (B, views, C, H, W) and the module averages the views' probabilities
            (``arl``: 9 random patches at test time).
        train_crops: if > 0, every training image gives this many ordered crops of ``crop_size`` (cut after
            the training pipeline, which then keeps the image at full size): ``patch``'s Ordered-Crop.
        eval_crops: the same for validation / test / predict: ``patch``'s N_C ∈ {5, 9, 16} ordered crops.
        train_crop_positions: ``ordered`` (the ``train_crops`` at the fixed positions of evaluation: Ordered-Crop)
            or ``random`` (``train_crops`` uniform random positions per image and epoch, seeded by the run's seed,
            epoch and sample: ``patch``'s Multi-Crop trained on N_C random crops per image jointly, as the
            authors' code does).
        crop_size: side of the crops in pixels (default: the data module's ``image_size``).
        resize_to: [height, width] in pixels every image is resized to before its pipeline (``patch``: SPC images
            to HAM10000's 450 × 600; smaller on the synthetic CPU default).
        **kwargs: the reader's arguments (:class:`~datamodules.datasets.reader.SplitReader` and the data set's own).

    Raises:
        ValueError: a repeat or view count below 1, a crop count below 0, or unknown crop positions.
    """

    def __init__(self, root: str | Path, train_repeats: int = 1, eval_views: int = 1, train_crops: int = 0,
                 eval_crops: int = 0, train_crop_positions: CropPositions = "ordered", crop_size: int | None = None,
                 resize_to: tuple[int, int] | None = None, **kwargs: Any) -> None:
        super().__init__(root, **kwargs)
        if train_repeats < 1 or eval_views < 1 or train_crops < 0 or eval_crops < 0:
            raise ValueError(f"train_repeats and eval_views must be ≥ 1 and the crop counts ≥ 0, got {train_repeats}, "
                             f"{eval_views}, {train_crops}, {eval_crops}")
        if train_crop_positions not in ("ordered", "random"):
            raise ValueError(f"train_crop_positions must be ordered or random, got {train_crop_positions!r}")
        self.train_repeats, self.eval_views = train_repeats, eval_views
        self.train_crops, self.eval_crops, self.train_crop_positions = train_crops, eval_crops, train_crop_positions
        self.crop_size: int | None = crop_size
        self.resize_to: tuple[int, ...] | None = tuple(resize_to) if resize_to else None

    def views_of(self, augment: bool, views: int | None = None) -> dict[str, Any]:
        """The :class:`~datamodules.datasets.image_dataset.ImageTableDataset` arguments ``repeats``, ``views``,
        ``crops``, ``crop_size`` and ``crop_positions`` for the training pipeline (``augment``) or the evaluation
        one; ``views`` overrides ``eval_views`` (``views=1``: one whole image, no crops)."""
        crops = 0 if views == 1 else self.train_crops if augment else self.eval_crops
        return {"repeats": self.train_repeats if augment else 1, "views": 1 if augment else (views or self.eval_views),
                "crops": crops, "crop_size": self.crop_size,
                "crop_positions": self.train_crop_positions if augment else "ordered"}
