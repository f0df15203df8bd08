"""Per-image predictions of one evaluation epoch, kept by the classifier base for the predictions file, the
reliability diagram and temperature scaling.

Each evaluation batch adds its image ids, targets, probabilities (as the metrics saw them) and ``scored`` flags;
:meth:`SplitPredictions.gathered` joins the batches and, under DDP, the ranks (every rank gets the whole set:
each rank must call it, as with a torchmetrics ``compute``). DistributedSampler pads the last shard by repeating
images; each image id is kept once (its first occurrence).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.distributed as dist


@dataclass
class GatheredPredictions:
    """N images: ``ids`` (list of str), ``targets`` (N,) int64, ``probabilities`` (N, C) float32,
    ``scored`` (N,) bool."""

    ids: list[str]
    targets: torch.Tensor
    probabilities: torch.Tensor
    scored: torch.Tensor

    def scored_only(self) -> GatheredPredictions:
        """The rows the metrics use (``scored`` True)."""
        keep = self.scored
        return GatheredPredictions([i for i, k in zip(self.ids, keep.tolist(), strict=True) if k], self.targets[keep],
                           self.probabilities[keep], self.scored[keep])


@dataclass
class SplitPredictions:
    """The batches of one split's current epoch (on CPU)."""

    batches: list[tuple[list[str], torch.Tensor, torch.Tensor, torch.Tensor]] = field(default_factory=list)
    _gathered: GatheredPredictions | None = None

    def reset(self) -> None:
        """Forget the epoch's batches (at the start of each evaluation epoch)."""
        self.batches, self._gathered = [], None

    def add(self, ids: Sequence[str], targets: torch.Tensor, probabilities: torch.Tensor,
            scored: torch.Tensor | None) -> None:
        """One batch: B ids, (B,) targets, (B, C) probabilities, (B,) bools or None (all scored)."""
        scored = torch.ones(len(targets), dtype=torch.bool) if scored is None else scored.detach().bool().cpu()
        self.batches.append(([str(i) for i in ids], targets.detach().long().cpu(),
                             probabilities.detach().float().cpu(), scored))
        self._gathered = None

    def gathered(self) -> GatheredPredictions | None:
        """Every rank's rows, each image once; None when nothing was added on any rank."""
        if self._gathered is not None:
            return self._gathered
        local = self._local()
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            shards = [None] * dist.get_world_size()
            dist.all_gather_object(shards, local)
            shards = [shard for shard in shards if shard is not None]
            if not shards:
                return None
            local = GatheredPredictions([i for shard in shards for i in shard.ids],
                                torch.cat([shard.targets for shard in shards]),
                                torch.cat([shard.probabilities for shard in shards]),
                                torch.cat([shard.scored for shard in shards]))
        if local is None:
            return None
        _, first = np.unique(np.array(local.ids), return_index=True)
        order = torch.from_numpy(np.sort(first))
        self._gathered = GatheredPredictions([local.ids[i] for i in order.tolist()], local.targets[order],
                                     local.probabilities[order], local.scored[order])
        return self._gathered

    def _local(self) -> GatheredPredictions | None:
        if not self.batches:
            return None
        return GatheredPredictions([i for batch in self.batches for i in batch[0]],
                           torch.cat([batch[1] for batch in self.batches]),
                           torch.cat([batch[2] for batch in self.batches]),
                           torch.cat([batch[3] for batch in self.batches]))


def scored_rows(values: torch.Tensor, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
    """``values`` (B, ...) and the batch's labels and weights without the images the official scorer gives
    score weight 0 (``batch['scored']`` False: ISIC_0035068 of the ISIC 2018 task 3 test set), as
    ``isic-challenge-scoring`` leaves them out of every metric; unchanged when the batch has no ``scored``."""
    scored = batch.get("scored")
    if scored is None or bool(scored.all()):
        return values, batch
    kept = {key: batch[key][scored] for key in ("label", "weight") if key in batch}
    rest = {key: value for key, value in batch.items() if key != "scored"}
    return values[scored], {**rest, **kept}
