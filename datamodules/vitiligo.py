"""Vitiligo vs vitiligo-like lesions (the ``dds`` paper's public and in-house sets), folder per class.

Layout, as the public set's published code expects::

    ROOT/{train,val,test}/Yes/*.jpg    vitiligo            (label 1)
    ROOT/{train,val,test}/No/*.jpg     vitiligo-like        (label 0)

Any accepted image type counts (``.jpg``, ``.JPEG``, ``.png``, ``.webp``, ...: :mod:`dermlab.files.listing`);
macOS ``._*`` / ``__MACOSX`` debris is left out.

``classes`` names the class folders in label order for sets that use other names.
"""

from __future__ import annotations

import numpy as np

from datamodules.base import ImageTable, SkinDataModule
from dermlab.errors import DataError
from dermlab.files.io import require_dir
from dermlab.files.listing import IMAGE_SUFFIXES, list_images

HINT = "Each split folder needs one sub-folder per class (see README) or `dermlab synth --dataset vitiligo`."


class VitiligoDataModule(SkinDataModule):
    def __init__(self, root: str, classes: tuple[str, ...] = ("No", "Yes"), **kwargs):
        super().__init__(root, **kwargs)
        self.classes = tuple(classes)
        self.class_names = self.classes

    def read_split(self, split: str) -> ImageTable:
        folder = require_dir(self.root / split, f"{split} folder", HINT)
        ids, paths, labels = [], [], []
        for label, name in enumerate(self.classes):
            class_folder = require_dir(folder / name, f"class folder for {name!r}", HINT)
            files = list_images(class_folder)
            if not files:
                raise DataError(f"class folder '{class_folder}' holds no images ({'/'.join(IMAGE_SUFFIXES)}, "
                                "any case); add its images or fix `classes`.")
            ids += [f"{name}/{p.stem}" for p in files]
            paths += files
            labels += [label] * len(files)
        return ImageTable(ids, paths, np.array(labels, dtype=np.int64), folder)
