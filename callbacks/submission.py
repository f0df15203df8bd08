"""``dermlab predict`` → an official submission CSV for the data set (``dermlab score`` reads it).

The datamodule maps probabilities to the official columns through ``submission(ids, probs)``. A module whose
``predict_step`` returns further (N, C) tables beside ``probabilities`` (e.g. ``ncm``: the ``isic2018`` task 3
nearest-class-mean prediction, one-hot) gets one more CSV per table, ``submission_<split>_<name>.csv``.
Under DDP every rank predicts a shard; rank 0 gathers them and writes one file.

Every file written is read back through :func:`dermlab.challenge.submissions.read_submission`, the official scorer's
rules: the predicted split's images each once, the datamodule's columns, numbers in [0, 1] (a diverged model's NaN, or a
predict run limited to some batches, stops here with the rows named rather than at the challenge's upload).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import lightning.pytorch as L
import numpy as np
import torch
import torch.distributed as dist
from lightning.pytorch.callbacks import BasePredictionWriter
from typing_extensions import override

from callbacks.protocols import SubmissionData
from dermlab.challenge.submissions import SubmissionLayout, read_submission


def expected_images(datamodule: object, predicted: list[str]) -> list[str]:
    """The images a submission must hold: the predicted split's table where the datamodule has one (its
    ``tables[predict_split]``, read with ``getattr`` defaults), else ``predicted``."""
    tables = getattr(datamodule, "tables", {})
    split = getattr(datamodule, "predict_split", None)
    return list(tables[split].ids) if split in tables else predicted


def exact_decimal(value: float) -> str:
    """``value`` as the shortest decimal that reads back as the same float, always with a decimal point and never in
    exponent form (``0.0``, ``0.000000015``): the official scorer refuses integer-only columns, and no two
    probabilities that differ in the run tie in the file (6 decimals made near-0 probabilities equal and moved the
    AUC that ``dermlab score`` reports)."""
    return np.format_float_positional(float(value), unique=True, trim="0")


class SubmissionWriter(BasePredictionWriter):
    """Write ``<output>`` (default ``<run folder>/submission_<split>.csv``) after ``predict``.

    Needs a :class:`~callbacks.protocols.SubmissionData` data module and a module whose ``predict_step`` returns
    ``image_id`` and ``probabilities`` (B, C) (plus further (B, C) tables, module docstring); a run whose
    predictions have no ``probabilities`` (a segmentation run) writes nothing.

    Raises:
        DataError: a written file that the official scorer's rules refuse (missing images, values outside [0, 1]).
    """

    def __init__(self, output: str | None = None):
        super().__init__(write_interval="epoch")
        self.output = output
        self.written: Path | None = None

    @override
    def write_on_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule,
                           predictions: Sequence[dict[str, Any]], batch_indices: Sequence[Any]) -> None:
        if not predictions or "probabilities" not in predictions[0]:
            return  # e.g. a segmentation run: its masks are written by MaskWriter
        ids = [i for batch in predictions for i in batch["image_id"]]
        rules = ["probabilities", *(k for k in predictions[0] if k not in ("image_id", "probabilities"))]
        tables = {rule: torch.cat([batch[rule] for batch in predictions]).cpu().numpy() for rule in rules}
        if dist.is_available() and dist.is_initialized():
            shards = [None] * dist.get_world_size()
            dist.all_gather_object(shards, (ids, tables))
            ids = [i for shard in shards for i in shard[0]]
            tables = {rule: np.concatenate([shard[1][rule] for shard in shards]) for rule in rules}
        if not trainer.is_global_zero:
            return
        # DistributedSampler pads the last shard by repeating images: keep each id once.
        _, first = np.unique(np.array(ids), return_index=True)
        order = np.sort(first)
        ids = [ids[i] for i in order]
        datamodule = cast(SubmissionData, trainer.datamodule)
        path = Path(self.output or Path(trainer.default_root_dir) / f"submission_{datamodule.predict_split}.csv")
        path.parent.mkdir(parents=True, exist_ok=True)
        for rule in rules:  # "probabilities": the submission; other rules (e.g. ``ncm``): submission_<split>_<rule>.csv
            target = path if rule == "probabilities" else path.with_name(f"{path.stem}_{rule}{path.suffix}")
            frame = datamodule.submission(ids, tables[rule][order])
            frame.to_csv(target, index=False, float_format=exact_decimal)
            read_submission(target, SubmissionLayout(frame.columns[0], tuple(frame.columns[1:])),
                            expected_images(datamodule, ids))
            print(f"wrote submission with {len(ids)} images to {target}")
        self.written = path
