"""The LightningModule's side of the metadata branch (:mod:`lightning_modules.nets.metadata_branch`): a mixin of
:class:`~lightning_modules.base.LesionClassifier`, so every classifier method takes it unchanged.

The branch is switched on by the data: a data module with ``metadata_fields`` (``-c experiments/base/metadata.yaml``)
fits their encoding on its training split; at set-up the module attaches the branch to its network and records the
encoding in its hyper-parameters (``metadata_encoding``), so the checkpoint carries it and
``load_from_checkpoint`` (and an exported package) rebuilds the same network. Before each training, validation,
test and predict batch the batch's ``metadata`` is fed to the branch (and cleared after it), so each method's own
steps, view / crop fusion and test-time augmentation run as they are.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from typing_extensions import override

from datamodules.metadata import MetadataEncoding
from dermlab.errors import DataError
from lightning_modules.nets.metadata_branch import attach_metadata_branch, branch_options, metadata_branch_of

log = logging.getLogger(__name__)


class MetadataInput:
    """Mixin: the patient-metadata branch of a classifier (hyper-parameters ``metadata_branch`` — its options,
    :data:`~lightning_modules.nets.metadata_branch.DEFAULTS` — and ``metadata_encoding``, set from the data)."""

    @property
    def metadata_encoding(self) -> MetadataEncoding | None:
        """The encoding this model was built with, or None for images only."""
        saved = self.hparams.get("metadata_encoding")
        return None if saved is None else MetadataEncoding.from_json(saved)

    def metadata_recipe(self) -> dict[str, Any] | None:
        """``{"encoding", "hidden", "fusion", "dropout", "field_dropout"}`` for the network recipe; None without."""
        saved = self.hparams.get("metadata_encoding")
        if saved is None:
            return None
        return {"encoding": dict(saved), **branch_options(self.hparams.get("metadata_branch"))}

    def use_metadata(self, encoding: MetadataEncoding) -> None:
        """Attach the branch for ``encoding`` (the data module's, fitted on its training split) and record it in the
        hyper-parameters; a model built with an encoding keeps its own.

        Raises:
            DataError: the model was built with another encoding (other fields or categories).
        """
        own = self.metadata_encoding
        if own is not None:
            if own != encoding:
                raise DataError(f"the model was built for metadata {own.columns}, the data gives {encoding.columns}")
            return
        self.hparams["metadata_encoding"] = encoding.to_json()
        options = branch_options(self.hparams.get("metadata_branch"))
        attach_metadata_branch(self.net, encoding, **options)
        log.info("metadata branch: %d encoded columns → dense %s → fused with the image features (%d units)",
                 encoding.width, options["hidden"], options["fusion"])

    @override
    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse a checkpoint whose metadata encoding is not this model's, before its weights load: an image-only
        checkpoint given metadata, a metadata checkpoint given none, or a resumed run whose training split's
        metadata changed (other categories or age statistics: the same columns would mean other things).

        Raises:
            DataError: naming both sides and what to do.
        """
        super().on_load_checkpoint(checkpoint)
        saved = (checkpoint.get("hyper_parameters") or {}).get("metadata_encoding")
        saved = None if saved is None else MetadataEncoding.from_json(saved)
        own = self.metadata_encoding
        if saved == own:
            return
        if saved is None:
            raise DataError(f"the checkpoint is of a model trained on images only, but the data gives patient metadata "
                            f"({', '.join(own.fields)}): leave out -c experiments/base/metadata.yaml (or set "
                            "data.init_args.metadata_fields to null)")
        if own is None:
            raise DataError(f"the checkpoint is of a model trained with patient metadata ({', '.join(saved.fields)}) "
                            "but this model has no metadata branch: add -c experiments/base/metadata.yaml (with the "
                            "same fields)")
        raise DataError(f"the checkpoint's metadata encoding ({saved.columns}, age mean {saved.age_mean}) differs from "
                        f"the one the data gives now ({own.columns}, age mean {own.age_mean}): the training split's "
                        "metadata changed since the checkpoint was written. Resume or test with the data it was "
                        "trained on, or start a new run")

    def setup_metadata(self) -> None:
        """At set-up: take the data module's encoding when it has one."""
        encoding = getattr(getattr(getattr(self, "_trainer", None), "datamodule", None), "metadata_encoding", None)
        if encoding is not None:
            self.use_metadata(encoding)

    def feed_metadata(self, batch: Any) -> None:
        """Give the batch's ``metadata`` to the branch.

        Raises:
            DataError: a metadata model's batch without metadata (the data module names no fields and follows no
                model).
        """
        branch = metadata_branch_of(self.net)
        if branch is None:
            return
        metadata = batch.get("metadata") if isinstance(batch, dict) else None
        if metadata is None:
            raise DataError(f"this model takes patient metadata ({', '.join(branch.fields)}) beside each image, "
                            "but the batch has none: add -c experiments/base/metadata.yaml (or "
                            "data.init_args.metadata_fields)")
        branch.feed(torch.as_tensor(metadata, device=self.device))

    def clear_metadata(self) -> None:
        """Forget the batch's metadata."""
        branch = metadata_branch_of(self.net)
        if branch is not None:
            branch.clear()

    # Lightning's batch hooks (this mixin comes before LightningModule in the classifier's bases)
    @override
    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        self.feed_metadata(batch)

    @override
    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.clear_metadata()

    @override
    def on_validation_batch_start(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self.feed_metadata(batch)

    @override
    def on_validation_batch_end(self, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self.clear_metadata()

    @override
    def on_test_batch_start(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self.feed_metadata(batch)

    @override
    def on_test_batch_end(self, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self.clear_metadata()

    @override
    def on_predict_batch_start(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self.feed_metadata(batch)

    @override
    def on_predict_batch_end(self, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self.clear_metadata()
