"""Vitiligo vs vitiligo-like lesions (the ``dds`` paper's public and in-house sets), folder per class.

Layout, as the public set's published code expects::

    ROOT/{train,val,test}/Yes/*.jpg    vitiligo            (label 1)
    ROOT/{train,val,test}/No/*.jpg     vitiligo-like        (label 0)

Any accepted image type counts (``.jpg``, ``.JPEG``, ``.png``, ``.webp``, ...: :mod:`dermlab.files.listing`);
macOS ``._*`` / ``__MACOSX`` debris is left out.

``classes`` names the class folders in label order for sets that use other names.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from typing_extensions import override

from datamodules.datasets.reader import ReaderDataset, SplitReader
from datamodules.datasets.table import ImageTable
from dermlab.errors import DataError
from dermlab.files.io import require_dir
from dermlab.files.listing import IMAGE_SUFFIXES, list_images

HINT = "Each split folder needs one sub-folder per class (see README) or `dermlab synth --dataset vitiligo`."


class VitiligoReader(SplitReader):
    """A folder-per-class set of images, one folder per split (``train``, ``val``, ``test``; see the module); an
    image's id is ``<class folder>/<file stem>``.

    Args:
        root: the folder holding the split folders.
        classes: the class folders' names in label order (the public set's ``No``, ``Yes``: label 1 is vitiligo).
        **kwargs: the further arguments of :class:`~datamodules.datasets.reader.SplitReader` (``seed``,
            ``on_bad_image``, ...) or, in a data module, of :class:`~datamodules.base.SkinDataModule`.
    """

    def __init__(self, root: str, classes: tuple[str, ...] = ("No", "Yes"), **kwargs: Any) -> None:
        super().__init__(root, **kwargs)
        self.classes = tuple(classes)
        self.class_names = self.classes

    @override
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


class VitiligoDataset(ReaderDataset):
    """The vitiligo folder-per-class sets, one split, as a plain torch ``Dataset``; keyword arguments go to
    :class:`VitiligoReader`.

    Items as :class:`~datamodules.datasets.reader.ReaderDataset` gives them.
    """

    reader_class = VitiligoReader
