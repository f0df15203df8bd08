"""Data sets whose papers split one labelled pool themselves (HAM10000, ISIC 2018 task 3).

``split`` picks the scheme (see :mod:`datamodules.splits`); every scheme keeps each lesion on one side:

* ``kfold``: lesion-grouped stratified K-fold (``fold`` of ``n_folds``): test = fold ``fold``, validation =
  fold ``fold + 1 (mod n_folds)``, training = the rest;
* ``patch``: 4 stratified, lesion-grouped parts, the last one the test set, ``fold`` 0–2 the validation part;
* ``weighting``: lesion-grouped random 80/20 train/test, ``fold`` 0 or 1 picks the split; no validation
  images unless ``val_fraction`` (of the training lesions) asks for them;
* ``holdout``: ``val_size`` training images, whole lesions, moved to validation (``dds``: 999);
  the test set is the official one where the data set has it;
* ``external``: every image is a test image and nothing trains or validates — a data set kept for testing models
  trained elsewhere (``test_on``, :mod:`datamodules.cross`; the external sets DDI, Fitzpatrick17k, PAD-UFES-20).

``dx_type_weights`` (e.g. ``{consensus: 1, follow_up: 2, confocal: 3, histo: 4}``, the factors of the
authors' public code) sets a per-sample loss weight from how the diagnosis was confirmed (``patch`` §II-F:
diagnosis-guided loss weighting). The paper weights benign cases only ("we increase the loss for benign
cases when more costly methods have been employed"): ``dx_type_weights_on: benign`` (default) leaves
MEL, BCC and AKIEC at 1; ``all`` weights every case, as the authors' code does.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import albumentations as A
import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from typing_extensions import override

from datamodules import splits
from datamodules.datasets.reader import ReaderDataset, SplitReader
from datamodules.datasets.table import ImageTable
from dermlab.errors import DataError

HAM_CLASSES = ("MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC")  # the ISIC 2018 column order
DX_TYPES = ("histo", "follow_up", "consensus", "confocal")
BENIGN = ("NV", "BKL", "DF", "VASC")  #: the benign HAM10000 classes (MEL, BCC, AKIEC are malignant)

#: How :class:`PooledReader` splits the pool (its ``split`` argument; the schemes are described above).
Scheme = Literal["kfold", "patch", "weighting", "holdout", "official", "external"]


class PooledReader(SplitReader):
    """A data set split from one pool of labelled images by a paper's scheme (see the module).

    Args:
        root: folder holding the data set exactly as downloaded.
        split: the scheme: ``kfold``, ``patch``, ``weighting``, ``holdout``, ``official`` (the released splits,
            where a subclass has them) or ``external`` (every image tests).
        fold: the fold (``kfold``), validation part (``patch``: 0–2) or split (``weighting``: 0 or 1) to use.
        n_folds: the number of folds of ``kfold``.
        val_size: the training images (whole lesions) that ``holdout`` moves to validation.
        val_fraction: the fraction of the training lesions that ``weighting`` validates on, in [0, 1).
        dx_type_weights: a loss factor per ``dx_type`` (``patch`` §II-F); None (or empty): no per-sample weights.
        dx_type_weights_on: ``benign`` weights the benign classes only (the paper), ``all`` every case (the
            authors' code).
        **kwargs: the further arguments of :class:`~datamodules.datasets.reader.SplitReader` (``seed``,
            ``on_bad_image``, ...) or, in a data module, of :class:`~datamodules.base.SkinDataModule`.

    Raises:
        ValueError: ``val_fraction`` outside [0, 1) or an unknown ``dx_type_weights_on``.
    """

    class_names = HAM_CLASSES

    def __init__(self, root: str, split: Scheme = "kfold", fold: int = 0, n_folds: int = 5, val_size: int = 999,
                 val_fraction: float = 0.0, dx_type_weights: dict[str, float] | None = None,
                 dx_type_weights_on: Literal["benign", "all"] = "benign", **kwargs: Any) -> None:
        super().__init__(root, **kwargs)
        if not 0 <= val_fraction < 1:
            raise ValueError(f"--data.init_args.val_fraction must be in [0, 1) (a fraction of the training lesions), "
                             f"got {val_fraction}")
        self.val_fraction = val_fraction
        if dx_type_weights_on not in ("benign", "all"):
            raise ValueError(f"dx_type_weights_on must be benign or all, got {dx_type_weights_on!r}")
        self.dx_type_weights_on = dx_type_weights_on
        self.scheme, self.fold, self.n_folds, self.val_size = split, fold, n_folds, val_size
        self.dx_type_weights = dx_type_weights
        self._indices: dict[str, np.ndarray] | None = None

    def read_pool(self) -> ImageTable:
        """Every labelled image of the pool (with ``groups`` = lesion ids and ``extra['dx_type']``)."""
        raise NotImplementedError

    def read_official_test(self) -> ImageTable:
        """The released test set, the test split of ``split: holdout``.

        Raises:
            DataError: the data set has none (the default).
        """
        raise DataError(f"{type(self).__name__} has no official test set; use split: kfold, patch or weighting.")

    def split_indices(self, pool: ImageTable) -> dict[str, np.ndarray]:
        """The row indices of ``pool`` in each split (``train``, ``val``, ``test``) under the scheme, drawn with
        ``seed`` by :mod:`datamodules.splits`; lesions (``pool.groups``) stay on one side.

        Raises:
            DataError: a scheme the data set does not offer (``official`` without an override).
        """
        labels, groups = pool.labels, pool.groups
        if self.scheme == "kfold":
            return splits.grouped_kfold(labels, groups, self.fold, self.n_folds, self.seed)
        if self.scheme == "patch":
            return splits.stratified_parts(labels, self.fold, self.seed, groups=groups)
        if self.scheme == "weighting":
            return splits.grouped_holdout(labels, groups, self.fold, self.seed, val_size=self.val_fraction)
        if self.scheme == "holdout":
            return splits.random_holdout(len(pool), self.val_size, self.seed, groups=groups)
        if self.scheme == "external":
            return {"train": np.zeros(0, int), "val": np.zeros(0, int), "test": np.arange(len(pool))}
        raise DataError(f"split {self.scheme!r} is not available for {type(self).__name__}.")

    def weigh(self, table: ImageTable) -> ImageTable:
        """``table`` with ``weights`` set from ``extra['dx_type']`` by :func:`diagnosis_weights` when
        ``dx_type_weights`` is given (changed in place and returned); as it was otherwise."""
        if self.dx_type_weights and "dx_type" in table.extra:
            table.weights = diagnosis_weights(table.labels, table.extra["dx_type"], self.dx_type_weights,
                                              self.dx_type_weights_on, self.class_names)
        return table

    @override
    def table(self, split: str) -> ImageTable:
        """As :meth:`~datamodules.datasets.reader.SplitReader.table`; under ``split: external`` there is nothing to
        train on.

        Raises:
            DataError: the training split asked for under ``split: external``, naming the data set and what to do
                (after reading the pool, so that a missing file or a wrong folder is named first).
        """
        if split == "train" and self.scheme == "external":
            self.raw_table("pool")  # a missing file or another data set's folder is named first
            raise DataError(f"{type(self).__name__} at '{self.root}' has split: external: every image is a test image "
                            "and none trains. Test a model trained elsewhere on it (data.init_args.test_on, see "
                            "experiments/external/), or train on it with split: kfold.")
        return super().table(split)

    @override
    def read_split(self, split: str) -> ImageTable:
        """``pool`` is the whole labelled pool (:meth:`read_pool`, weighed); ``train``, ``val`` and ``test`` are
        the scheme's subsets of it (the released test set for ``holdout``'s ``test``)."""
        if self.scheme == "holdout" and split == "test":
            return self.weigh(self.read_official_test())
        pool = self.raw_table("pool") if split != "pool" else None
        if split == "pool":
            return self.weigh(self.read_pool())
        if self._indices is None:
            self._indices = self.split_indices(pool)
        return pool.subset(self._indices[split])


def diagnosis_weights(labels: ArrayLike, dx_types: Sequence[str], factors: dict[str, float], on: str = "benign",
                      class_names: Sequence[str] = HAM_CLASSES) -> np.ndarray:
    """Per-sample loss factor from how each diagnosis was confirmed (``patch`` §II-F); malignant cases stay at 1
    unless ``on`` is ``all``.

    Args:
        labels: (N,) class indices into ``class_names``.
        dx_types: (N,) how each diagnosis was confirmed (HAM10000's ``dx_type``: ``histo``, ``follow_up``, ...).
        factors: the loss factor of each ``dx_type``.
        on: ``benign`` weights the images of the benign classes (NV, BKL, DF, VASC) only; anything else (``all``)
            weights every image.
        class_names: the class names ``labels`` index (they must include the benign ones when ``on`` is
            ``benign``).

    Returns:
        (N,) float32 factors.

    Raises:
        DataError: a ``dx_type`` without a factor.
    """
    unknown = set(dx_types) - set(factors)
    if unknown:
        raise DataError(f"dx_type_weights has no weight for {sorted(unknown)}; give one for each of {list(DX_TYPES)}.")
    weights = np.array([factors[t] for t in dx_types], np.float32)
    if on == "benign":
        benign = np.isin(np.asarray(labels), [class_names.index(c) for c in BENIGN])
        weights = np.where(benign, weights, 1.0).astype(np.float32)
    return weights


def one_hot_labels(table: pd.DataFrame, columns: Sequence[str], path: str | Path) -> np.ndarray:
    """Class index of each one-hot row of a ground truth (ISIC 2018 task 3, ISIC 2019).

    Args:
        table: the ground truth, image id in its first column.
        columns: the one-hot columns, in class order (values as text or numbers).
        path: the file ``table`` came from, named in the error.

    Returns:
        (N,) int64 indices into ``columns``.

    Raises:
        DataError: a row that does not hold exactly one 1.0 (and 0.0 elsewhere), naming its line and image.
    """
    values = table[list(columns)].apply(lambda c: c.astype(float))
    sums = values.sum(axis=1).to_numpy()
    valid = values.isin([0.0, 1.0]).all(axis=1).to_numpy() & np.isclose(sums, 1.0)
    if not valid.all():
        row = int(np.flatnonzero(~valid)[0])
        raise DataError(f"'{path}' row {row + 2} ({table.iloc[row, 0]}) is not one-hot over {', '.join(columns)} "
                        f"(values sum to {sums[row]:g}); each image needs exactly one 1.0.")
    return values.to_numpy().argmax(1)


class PooledDataset(ReaderDataset):
    """One split of a pooled data set as a plain torch ``Dataset``:
    :class:`~datamodules.datasets.reader.ReaderDataset` with the split scheme named ``scheme`` (the reader's
    ``split`` argument, which the ``Dataset``'s ``split`` would shadow).

    Args:
        root: the data set's folder as downloaded, or a reader.
        split: ``train``, ``val`` or ``test``.
        scheme: the split scheme (``kfold``, ``patch``, ``weighting``, ``holdout``, ``official``); None: the
            reader's default.
        transform: as :class:`~datamodules.datasets.reader.ReaderDataset`.
        image_size: as :class:`~datamodules.datasets.reader.ReaderDataset`.
        **options: the reader's other arguments (``fold``, ``n_folds``, ``val_size``, ``seed``, ...).
    """

    def __init__(self, root: str | Path | SplitReader, split: str = "train", transform: A.Compose | None = None,
                 image_size: int = 224, *, scheme: Scheme | None = None, **options: Any) -> None:
        if isinstance(root, SplitReader) and scheme is not None:
            raise ValueError(f"scheme={scheme!r} beside a ready-made reader: give the reader split={scheme!r}")
        self.scheme = scheme
        super().__init__(root, split, transform, image_size, **options)

    @override
    def read_with(self, root: str | Path, options: dict[str, Any]) -> SplitReader:
        """The reader with ``scheme`` as its ``split`` argument (the split scheme)."""
        return self.reader_class(root, **options, **({} if self.scheme is None else {"split": self.scheme}))
