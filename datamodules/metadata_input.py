"""The data module's side of the metadata branch: which patient fields go beside each image, their encoding fitted
on the training split (or taken from the model a checkpoint restored), and the encoded vector of every image.
Free of Lightning: a mixin of :class:`datamodules.base.SkinDataModule` (see :mod:`datamodules.metadata`)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from datamodules.metadata import MetadataEncoding, unseen_summary
from dermlab.errors import DataError
from dermlab.files.metadata import UNKNOWN, patient_rows

log = logging.getLogger(__name__)

METADATA_FILE = "metadata.json"  #: in the run's ``splits/`` folder: the fields, their encoding, unseen categories


class PatientMetadataInput:
    """Patient fields beside each image (``metadata_fields``), for models with a metadata branch.

    Args:
        root: the data set's folder (passed on).
        metadata_fields: the patient fields each item carries as ``metadata``, encoded
            (:class:`~datamodules.metadata.MetadataEncoding`: ``age`` scaled with a missing indicator, ``sex`` and
            ``localization`` one-hot with a ``missing`` category) from the training split only; e.g.
            ``[age, sex, localization]`` (``experiments/base/metadata.yaml`` sets these). None (the default): images
            only. A field the data set does not ship is refused at set-up, naming the field and the data set.
    """

    def __init__(self, root: str | Path, metadata_fields: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(root, **kwargs)
        self.metadata_fields = list(metadata_fields) if metadata_fields else None
        self._metadata_encoding: MetadataEncoding | None = None
        self._metadata_from_model = False
        self.unseen_metadata: dict[str, dict[str, dict[str, int]]] = {}  # split → field → value → images
        self._encoded: dict[str, tuple[pd.DataFrame, MetadataEncoding, np.ndarray]] = {}  # split → what it encoded
        self._patients: dict[str, pd.DataFrame] = {}  # split → its images' patient metadata, as read

    @property
    def metadata_source(self) -> str:
        """The data set as errors name it, by its config name (or class) and folder."""
        return f"{getattr(self, 'config_name', None) or type(self).__name__} ('{self.root}')"

    @property
    def metadata_encoding(self) -> MetadataEncoding | None:
        """The encoding of ``metadata_fields``: the model's when it was restored with one (:meth:`follow_metadata`),
        else fitted on this data set's training split (once); None without metadata fields.

        Raises:
            DataError: a field the data set does not ship (see :meth:`~datamodules.metadata.MetadataEncoding.fit`).
        """
        if self._metadata_encoding is None and self.metadata_fields:
            self._metadata_encoding = MetadataEncoding.fit(self.patient_metadata("train"), self.metadata_fields,
                                                           self.metadata_source)
            log.info("metadata branch: %s encoded as %d columns (fitted on %d training images)",
                     ", ".join(self.metadata_fields), self._metadata_encoding.width, len(self.table("train")))
        return self._metadata_encoding

    def follow_metadata(self, model: object) -> None:
        """Encode with ``model``'s encoding when it has one (a checkpoint's: what it was trained with), taking its
        fields when this data module names none.

        Raises:
            DataError: the data module names other fields than the model was trained with; or it names fields and
                the model cannot take metadata (a segmenter).
        """
        saved = getattr(model, "metadata_encoding", None)
        if saved is None:
            if self.metadata_fields and not hasattr(model, "use_metadata"):
                raise DataError(f"data.init_args.metadata_fields {self.metadata_fields}: {type(model).__name__} "
                                "takes no patient metadata (only the classifiers do); drop the option")
            return
        if self.metadata_fields and list(saved.fields) != self.metadata_fields:
            raise DataError(f"the model was trained with metadata fields {list(saved.fields)}, but "
                            f"data.init_args.metadata_fields is {self.metadata_fields}: give the model's fields "
                            "(or drop the option: the data then follows the model)")
        if not self.metadata_fields:
            log.info("the model takes patient metadata (%s): encoded as it was trained", ", ".join(saved.fields))
        self.metadata_fields, self._metadata_encoding, self._metadata_from_model = list(saved.fields), saved, True

    def split_patient_metadata(self, split: str) -> pd.DataFrame:
        """The patient metadata of ``split``'s images, from the data set whose files hold them (a ``test_on`` test
        split's from that data set), in the split's order.

        Raises:
            DataError: that data set lacks one of the fields (naming the field and the data set).
        """
        source, ids = self.split_source(split), self.table(split).ids
        cached = self._patients.get(split)
        if cached is not None and cached.index.tolist() == ids:  # read once per split (encoding, split CSV)
            frame = cached
        else:
            frame = self._patients[split] = patient_rows(source.patient_metadata(split), ids)
        absent = [f for f in self.metadata_fields or () if f not in frame.columns]
        if absent:
            has = ", ".join(frame.columns) or "no patient metadata"
            raise DataError(f"metadata field {absent[0]!r} is not in data set {source.metadata_source} (the {split} "
                            f"split's images): its files give {has}. Drop {absent[0]!r} from "
                            "data.init_args.metadata_fields, or test on a data set that ships it.")
        return frame

    def encoded_metadata(self, split: str) -> np.ndarray | None:
        """(N, width) float32 encoding of ``split``'s images (None without metadata fields), encoded once per split
        (at set-up, :meth:`check_metadata`); unseen categories are encoded as missing, logged and kept for
        ``splits/metadata.json``."""
        encoding = self.metadata_encoding
        if encoding is None:
            return None
        frame = self.split_patient_metadata(split)  # the same frame while the split's images stay the same
        cached = self._encoded.get(split)
        if cached is not None and cached[0] is frame and cached[1] == encoding:
            return cached[2]
        vectors, unseen = encoding.encode(frame)
        self._encoded[split] = (frame, encoding, vectors)
        if unseen and split != "train":
            self.unseen_metadata[split] = {k: dict(v) for k, v in unseen.items()}
            log.warning("metadata: %s images of the %s split have a category the training split never had (%s): "
                        "encoded as missing", sum(sum(c.values()) for c in unseen.values()), split,
                        unseen_summary(unseen))
        return vectors

    def check_metadata(self, splits: tuple[str, ...]) -> None:
        """At set-up: fit (or take) the encoding, check every needed split's data set ships the fields and encode
        each split (so ``splits/metadata.json`` records its unseen categories)."""
        if self.metadata_encoding is None:
            return
        for split in splits:
            self.encoded_metadata(split)

    def metadata_columns(self, split: str) -> dict[str, list]:
        """The raw values of the metadata fields for ``split``'s images, as ``meta_<field>`` columns of
        ``splits/<split>.csv`` (empty where missing); none without metadata fields."""
        if self.metadata_encoding is None:
            return {}
        values = self.split_patient_metadata(split)
        def raw(value: object) -> object:
            return "" if (isinstance(value, float) and np.isnan(value)) or value == UNKNOWN else value

        return {f"meta_{name}": [raw(v) for v in values[name].tolist()] for name in self.metadata_encoding.fields}

    def write_metadata_file(self, folder: Path) -> None:
        """``splits/metadata.json``: the fields, their encoding, where it came from and the unseen categories met
        per split; nothing without metadata fields."""
        encoding = self.metadata_encoding
        if encoding is None:
            return
        record = {"fields": list(encoding.fields), "encoding": encoding.to_json(),
                  "fitted_on": ("train split (as the model's checkpoint records it)" if self._metadata_from_model
                                else "train split"),
                  "unseen": self.unseen_metadata}
        (folder / METADATA_FILE).write_text(json.dumps(record, indent=1) + "\n")
