"""``dermlab predict`` → an official submission CSV for the data set (``dermlab score`` reads it).

The datamodule maps probabilities to the official columns through ``submission(ids, probs)``.
Under DDP every rank predicts a shard; rank 0 gathers them and writes one file.
"""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as L
import numpy as np
import torch
import torch.distributed as dist
from lightning.pytorch.callbacks import BasePredictionWriter


class SubmissionWriter(BasePredictionWriter):
    """Write ``<output>`` (default ``<run folder>/submission_<split>.csv``) after ``predict``."""

    def __init__(self, output: str | None = None):
        super().__init__(write_interval="epoch")
        self.output = output
        self.written: Path | None = None

    def write_on_epoch_end(self, trainer: L.Trainer, pl_module, predictions, batch_indices):
        ids = [i for batch in predictions for i in batch["image_id"]]
        probabilities = torch.cat([batch["probabilities"] for batch in predictions]).cpu().numpy()
        if dist.is_available() and dist.is_initialized():
            shards = [None] * dist.get_world_size()
            dist.all_gather_object(shards, (ids, probabilities))
            ids = [i for shard in shards for i in shard[0]]
            probabilities = np.concatenate([shard[1] for shard in shards])
        if not trainer.is_global_zero:
            return
        # DistributedSampler pads the last shard by repeating images: keep each id once.
        _, first = np.unique(np.array(ids), return_index=True)
        order = np.sort(first)
        ids, probabilities = [ids[i] for i in order], probabilities[order]
        datamodule = trainer.datamodule
        path = Path(self.output or Path(trainer.default_root_dir) / f"submission_{datamodule.predict_split}.csv")
        path.parent.mkdir(parents=True, exist_ok=True)
        datamodule.submission(ids, probabilities).to_csv(path, index=False, float_format="%.6f")
        self.written = path
        print(f"wrote submission with {len(ids)} images to {path}")
