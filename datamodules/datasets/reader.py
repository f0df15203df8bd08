"""What every data set's reader shares: the official files of each split read once into an
:class:`~datamodules.datasets.table.ImageTable`, extra training images, and the bad-image policy.

A reader is plain Python (no Lightning): :class:`SplitReader` subclasses map one official layout to tables
(``read_split``), and :class:`ReaderDataset` serves one split of a reader as a torch ``Dataset`` for a plain
PyTorch loop. Each LightningDataModule of :mod:`datamodules` is its data set's reader plus loaders
(:class:`datamodules.base.SkinDataModule`).
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import Any, ClassVar, Literal

import albumentations as A
import numpy as np
import pandas as pd

from datamodules.datasets.image_dataset import ImageTableDataset
from datamodules.datasets.table import ImageTable, file_size, shortlist
from datamodules.transforms import IMAGENET, build_transforms
from dermlab.errors import DataError
from dermlab.files.data_folders import wrong_folder_note
from dermlab.files.io import load_rgb
from dermlab.files.metadata import subgroups_of

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")

#: What set-up does with a missing, empty or unreadable image (the ``on_bad_image`` argument).
BadImagePolicy = Literal["error", "skip"]


class SplitReader:
    """Reads one data set's official files into an :class:`~datamodules.datasets.table.ImageTable` per
    split.

    Args:
        root: folder holding the data set exactly as downloaded (see each data set's docs page).
        seed: seed of the data set's random splits (validation hold-outs, folds).
        on_bad_image: ``error`` stops at a missing, empty or unreadable image; ``skip`` leaves it out,
            logging how many and which (it decodes every image once at set-up to find them).
        extra_train_csv: a CSV of further training images in the data set's own ground-truth format
            (``arl``: the paper's 1320 ISIC-archive images; ``isic2018`` task 3: Dermofit VASC / DF); they
            are added to the training split only, after any validation split has been drawn.
        extra_train_images: the folder of those images (default: the CSV's folder).
        duplicates_csv: a published duplicates list (ISIC 2020 layout ``image_name_1,image_name_2``) the split
            audit applies (and ISIC 2020's reader drops); by default ``<root>/ISIC_2020_Training_Duplicates.csv``
            when that file exists.

    Raises:
        ValueError: an unknown ``on_bad_image``.
    """

    class_names: tuple[str, ...] = ()
    #: What the message about absent images adds for this data set (e.g. that its images are fetched from links,
    #: some dead); empty by default.
    absent_note: ClassVar[str] = ""

    def __init__(self, root: str | Path, seed: int = 0, on_bad_image: BadImagePolicy = "error",
                 extra_train_csv: str | None = None, extra_train_images: str | None = None,
                 duplicates_csv: str | None = None) -> None:
        super().__init__()  # a LightningDataModule that builds on a reader comes next in its method order
        if on_bad_image not in ("error", "skip"):
            raise ValueError(f"on_bad_image={on_bad_image!r} is not a known choice (error or skip)")
        self.root = Path(root).expanduser()
        self.seed, self.on_bad_image = seed, on_bad_image
        self.extra_train_csv = Path(extra_train_csv).expanduser() if extra_train_csv else None
        self.extra_train_images = Path(extra_train_images).expanduser() if extra_train_images else None
        self.duplicates_csv = Path(duplicates_csv).expanduser() if duplicates_csv else None
        self.tables: dict[str, ImageTable] = {}
        self._absent_reported = False  # the whole data set's absent images are reported once (see screen())
        self._raw: dict[str, ImageTable | None] = {}

    # --- what a subclass provides -------------------------------------------------------
    def read_split(self, split: str) -> ImageTable:
        """Map the official files of ``split`` to an ImageTable, validating them."""
        raise NotImplementedError

    def read_ground_truth(self, csv: Path, images: Path) -> ImageTable:
        """A CSV in this data set's ground-truth format with its images in ``images`` (for ``extra_train_csv``).

        Raises:
            DataError: the data set takes no extra training images (the default).
        """
        raise DataError(f"{type(self).__name__} does not take extra training images (extra_train_csv="
                        f"'{self.extra_train_csv}'); remove the option or merge the images into the data set.")

    def patient_metadata(self, split: str) -> pd.DataFrame:
        """The patient metadata of ``split``'s images as its files give it: a frame indexed by image id (the split's
        images, in order) with the :data:`~dermlab.files.metadata.PATIENT_FIELDS` the data set ships (``age`` in
        years, NaN where missing; ``sex`` and ``localization`` as text, ``unknown`` where missing;
        :func:`~dermlab.files.metadata.patient_fields`). The one reading of a data set's metadata: the subgroup
        metrics (:meth:`metadata`) and the metadata branch (:mod:`datamodules.metadata`) both start from it. A data
        set whose files carry none (the default) has no columns."""
        return pd.DataFrame(index=pd.Index(self.table(split).ids, name="image_id"))

    def metadata(self, split: str) -> pd.DataFrame:
        """Per-image attributes of ``split`` for the subgroup metrics (:mod:`dermlab.stats.subgroups`,
        :class:`callbacks.subgroups.SubgroupMetrics`): a frame indexed by image id (the split's images, in order),
        one text column per attribute (``sex``, ``age_band``, ``localization``), ``unknown`` where a value is missing;
        :func:`~dermlab.files.metadata.subgroups_of` the :meth:`patient_metadata`."""
        return subgroups_of(self.patient_metadata(split))

    def lesion_masks(self, split: str) -> dict[str, Path]:
        """The lesion mask file of each image of ``split`` that the data set ships one for (the skin-tone proxy
        leaves the lesion out by it, :mod:`dermlab.stats.skin_tone`); none by default."""
        return {}

    def submission(self, ids: list[str], probabilities: np.ndarray) -> pd.DataFrame:
        """The submission table: ``image`` plus one probability column per class (official layouts override).

        Args:
            ids: the image ids, one per row of ``probabilities``.
            probabilities: (N, num_classes) class probabilities.
        """
        frame = pd.DataFrame({"image": ids})
        for index, name in enumerate(self.class_names):
            frame[name] = probabilities[:, index]
        return frame

    # --- shared behaviour ---------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        """The number of classes the labels index."""
        return len(self.class_names)

    @classmethod
    def config_names(cls) -> dict[str, tuple[type, dict[str, object]]]:
        """The registry :attr:`config_name` looks itself up in: config name -> (class, the arguments that tell two
        names of one class apart); the readers' (``datamodules.datasets.READERS``)."""
        from datamodules.datasets import READERS

        return READERS

    @property
    def config_name(self) -> str | None:
        """This reader's (or data module's) data-set config name (``isic2017``, ``isic2018_task1``, ...), if any."""
        return next((name for name, (cls, fixed) in self.config_names().items()
                     if type(self) is cls and all(getattr(self, k, None) == v for k, v in fixed.items())), None)

    def raw_table(self, split: str) -> ImageTable | None:
        """``split`` as its files list it, before ``on_bad_image`` screening (read once); ``extra`` is the
        ``extra_train_csv`` images (``None`` without one). Split schemes draw from these, so a bad image never
        moves another between splits.

        Raises:
            DataError: a file of the split is missing or malformed (naming the data set the folder holds instead,
                where it holds another).
        """
        if split not in self._raw:
            if split == "extra":
                self._raw[split] = None if self.extra_train_csv is None else self.read_ground_truth(
                    self.extra_train_csv, self.extra_train_images or self.extra_train_csv.parent)
            else:
                try:
                    self._raw[split] = self.read_split(split)
                except DataError as error:  # a file missing: say which data set the folder holds, if another
                    note = wrong_folder_note(self.root, self.config_name)
                    if not note or note in str(error):
                        raise
                    raise DataError(f"{error}{note}") from None
        return self._raw[split]

    def table(self, split: str) -> ImageTable:
        """The validated table of ``split`` (``train`` includes the extra training images), read once."""
        if split not in self.tables:
            table = self.raw_table(split)
            if split == "train" and self.extra_train_csv is not None:
                table = table.concat(self.extra_training_images(table))
            self.tables[split] = self.screen(table)
        return self.tables[split]

    def extra_training_images(self, train: ImageTable) -> ImageTable:
        """The ``extra_train_csv`` images, refused where one is already a training, validation or test image."""
        extra = self.raw_table("extra")
        for split, ids in (("train", train.ids), *((s, self.table(s).ids) for s in ("val", "test"))):
            clash = sorted(set(extra.ids) & set(ids))
            if clash:
                raise DataError(f"{len(clash)} image(s) of extra_train_csv '{self.extra_train_csv}' are already in the "
                                f"{split} split (e.g. {clash[0]}); remove them from the CSV"
                                + (" — evaluating on training images would inflate the results." if split != "train"
                                   else "."))
        return extra

    def screen(self, table: ImageTable) -> ImageTable:
        """Apply ``on_bad_image`` to images that are missing, empty (0 bytes) or lack a listed mask (always checked,
        at set-up: one ``stat`` per file) or are unreadable (decoded at set-up in skip mode only; in error mode an
        image that cannot be decoded stops the run when its batch loads, naming the file).

        Absent images are reported once for the whole data set (:meth:`absent_report`: how many of all listed
        images are absent, per split), as one error (``error``) or one warning (``skip``, first screened split),
        with the data set's :attr:`absent_note`.

        Raises:
            DataError: in ``error`` mode, an empty or absent image or an absent mask, naming the file and the fix.
        """
        if table.screened:
            return table
        table.screened = True
        sizes = [file_size(p) for p in table.paths]  # one stat per image
        missing = [i for i, size in enumerate(sizes) if size is None]
        empty = [i for i, size in enumerate(sizes) if size == 0]
        if empty and self.on_bad_image == "error":
            raise DataError(f"{len(empty)} image(s) listed in '{table.source}' are empty (0 bytes), e.g. "
                            f"'{table.paths[empty[0]]}', as after a download or copy that stopped before writing "
                            "them; re-download them, remove those rows, or set on_bad_image: skip.")
        if missing and self.on_bad_image == "error":
            absent, listed, sources, details = self.absent_report(table, missing)
            raise DataError(f"{absent:,} image(s) listed in {sources} are missing (of {listed:,} listed; "
                            f"{details}), as after an incomplete download; re-download the images, remove those "
                            f"rows, or set on_bad_image: skip to go on with the {listed - absent:,} present ones."
                            + (f" {self.absent_note}" if self.absent_note else ""))
        if missing and not self._absent_reported:
            self._absent_reported = True
            absent, listed, sources, details = self.absent_report(table, missing)
            log.warning("on_bad_image=skip: left out %s of %s images listed in %s, as they are missing (%s); going on "
                        "with the %s present ones.%s", f"{absent:,}", f"{listed:,}", sources, details,
                        f"{listed - absent:,}", f" {self.absent_note}" if self.absent_note else "")
        lacking = [i for i, row in enumerate(table.masks or []) if any(not m.is_file() for m in row)]
        if lacking and self.on_bad_image == "error":
            absent = [m for i in lacking for m in table.masks[i] if not m.is_file()]
            raise DataError(f"{len(absent)} mask(s) are missing from '{absent[0].parent}' (e.g. {absent[0].name}) "
                            f"for images listed in '{table.source}'; every image needs its mask(s): re-download "
                            "them, remove those images, or set on_bad_image: skip.")
        bad = set(missing) | set(lacking)
        unreadable = set()
        if self.on_bad_image == "skip":
            for i, path in enumerate(table.paths):
                if i not in bad:
                    try:
                        load_rgb(path)
                    except DataError:
                        unreadable.add(i)
        if not bad | unreadable:
            return table
        other = sorted((set(lacking) | unreadable) - set(missing))
        if other:
            names = [table.ids[i] for i in other]
            log.warning("on_bad_image=skip: left out %d of %d images of '%s' that lack a mask or cannot be decoded: "
                        "%s", len(names), len(table), table.source, shortlist(names))
        bad |= unreadable
        return table.subset([i for i in range(len(table)) if i not in bad])

    def absent_report(self, table: ImageTable, missing: list[int]) -> tuple[int, int, str, str]:
        """The absent images of the whole data set, as after a partial download: ``(absent, listed, sources,
        details)``, ``details`` giving the count per split and the first few of ``table``.

        ``table`` is the split being screened and ``missing`` its absent rows; every split (and the
        ``extra_train_csv`` images) is counted from its files as listed; a split that cannot be read is left out.
        """
        counts: dict[str, tuple[int, int]] = {}
        sources: list[str] = []
        for split in (*SPLITS, "extra"):
            try:
                raw = self.raw_table(split)
            except DataError:
                continue
            if raw is None or not len(raw):
                continue
            absent = sum(not p.is_file() for p in raw.paths)
            counts[split] = (absent, len(raw))
            if absent and repr(str(raw.source)) not in sources:
                sources.append(repr(str(raw.source)))
        absent, listed = sum(c[0] for c in counts.values()), sum(c[1] for c in counts.values())
        if absent < len(missing):  # the screened table is not one of the splits (e.g. a pool): count it alone
            counts, absent, listed, sources = {}, len(missing), len(table), [repr(str(table.source))]
        per_split = ", ".join(f"{split} {a:,} of {n:,}" for split, (a, n) in counts.items())
        shown = ", ".join(table.paths[i].name for i in missing[:3])
        return absent, listed, ", ".join(sources), (f"{'absent per split: ' + per_split + '; ' if per_split else ''}"
                                                    f"e.g. {shown} in '{table.paths[missing[0]].parent}'")


class ReaderDataset(ImageTableDataset):
    """One split of a data set as a plain torch ``Dataset`` (no Lightning), for a PyTorch loop of one's own.

    Each data set's ``Dataset`` (``ISIC2017Dataset``, ``HAM10000Dataset``, ...) is this class with its reader as
    :attr:`reader_class`: ``ISIC2017Dataset(root, "train", task="three_class")`` reads ``root`` with
    ``ISIC2017Reader(root, task="three_class")``. Any reader can also be given ready-made:
    ``ReaderDataset(ISIC2017Reader(root), "test")``.

    Each item is a dict: ``image`` a (3, H, W) float tensor (after ``transform``), ``label`` the class index
    (-1 where the split has no labels), ``weight`` the per-sample loss weight (1.0 unless the data set sets one),
    ``image_id`` the official id; a segmentation split adds ``mask`` (masks, H, W) in [0, 1] and
    ``original_size``. The split is read and screened as a run's set-up does (missing or empty images stop it,
    naming the file, unless the reader's ``on_bad_image`` is ``skip``).

    Args:
        root: the data set's folder as downloaded (its docs page gives the layout), or a reader.
        split: ``train``, ``val`` or ``test`` (the splits the reader's scheme defines).
        transform: an albumentations pipeline ending in ``ToTensorV2``; by default the suite's evaluation
            pipeline (resize to ``image_size`` × ``image_size`` px, ImageNet mean / std normalisation).
        image_size: the side of the default pipeline's output in pixels.
        **options: the reader's arguments (the data set's own, ``seed``, ``on_bad_image``, ...), with a root only.

    Raises:
        ValueError: an unknown split name, or options beside a ready-made reader.
        DataError: the split's files are missing or malformed, naming the file and what to do.
    """

    #: The reader a root folder is read with.
    reader_class: ClassVar[type[SplitReader]] = SplitReader

    def __init__(self, root: str | Path | SplitReader, split: str = "train", transform: A.Compose | None = None,
                 image_size: int = 224, **options: Any) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if isinstance(root, SplitReader) and options:
            raise ValueError(f"options {sorted(options)} are the reader's: give them to the reader, or a root folder")
        if transform is not None and not hasattr(transform, "set_random_state"):
            raise TypeError(f"transform must be an albumentations pipeline (A.Compose([...]) ending in ToTensorV2), "
                            f"got {type(transform).__name__}")
        if not isinstance(root, SplitReader):
            if self.reader_class is SplitReader:
                raise TypeError("ReaderDataset reads a folder through a data set's reader: give a reader "
                                "(ReaderDataset(ISIC2017Reader(root), 'train')) or use a data set's Dataset class")
            unknown = sorted(set(options) - set(reader_arguments(self.reader_class)))
            if unknown:
                raise TypeError(f"{type(self).__name__} got unknown option(s) {unknown}; its reader "
                                f"{self.reader_class.__name__} takes {reader_arguments(self.reader_class)} (batch "
                                "size, workers and samplers belong to the DataLoader or the data module)")
        self.reader = root if isinstance(root, SplitReader) else self.read_with(root, options)
        self.split = split
        transform = transform or build_transforms("none", image_size, train=False, normalisation=IMAGENET)
        # augmentation draws from torch's generator: fresh each epoch and worker, torch.manual_seed repeats it
        super().__init__(self.reader.table(split), transform, seed=None)

    def read_with(self, root: str | Path, options: dict[str, Any]) -> SplitReader:
        """The reader of ``root`` with ``options`` (a subclass may name an option otherwise than its reader)."""
        return self.reader_class(root, **options)

    @property
    def class_names(self) -> tuple[str, ...]:
        """The names of the classes ``label`` indexes."""
        return tuple(self.reader.class_names)


def reader_arguments(reader_class: type[SplitReader]) -> list[str]:
    """The keyword arguments ``reader_class`` takes besides ``root``: its own and those its ``**kwargs`` pass on
    along the method order, up to :class:`SplitReader`'s."""
    names: list[str] = []
    for cls in reader_class.__mro__:
        if "__init__" not in vars(cls) or not issubclass(cls, SplitReader):
            continue
        parameters = list(inspect.signature(vars(cls)["__init__"]).parameters.values())[1:]
        names += [p.name for p in parameters if p.name != "root" and p.kind is not p.VAR_KEYWORD
                  and p.name not in names]
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            break
    return names
