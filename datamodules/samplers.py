"""Class-imbalance samplers shared by every datamodule.

Both are plain index samplers, so Lightning's automatic DDP wrapping (``DistributedSamplerWrapper``
with ``shuffle=False``, which hands rank r the indices r, r + W, r + 2W, …) keeps them correct:

* :class:`OversamplingSampler` repeats every class (reshuffled each epoch) up to the size of the
  largest class — the ``patch`` paper's "oversampling";
* :class:`BalancedBatchSampler` yields batches holding exactly ``batch_size / C`` images of every
  class. Its order interleaves the ranks' batches so that, after DDP slicing, each rank's
  consecutive ``batch_size`` indices form one balanced batch and no two ranks see the same image
  within a pass over a class. Use it with ``drop_last=True`` and the same ``batch_size``.

Each ``__iter__`` is one epoch with a new permutation (seed + epoch counter), identical on every
rank because all ranks start from the same seed.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler


class _EpochSampler(Sampler[int]):
    def __init__(self, labels, seed: int = 0):
        self.labels = np.asarray(labels)
        self.classes = [np.flatnonzero(self.labels == c) for c in np.unique(self.labels)]
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _next_rng(self) -> np.random.Generator:
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        return rng

    @staticmethod
    def _stream(indices: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
        """``count`` indices from a class: whole shuffled passes, then part of one more."""
        passes = [rng.permutation(indices) for _ in range(-(-count // len(indices)))]
        return np.concatenate(passes)[:count]


class OversamplingSampler(_EpochSampler):
    """Every class repeated to the count of the largest class, shuffled together."""

    def __len__(self) -> int:
        return len(self.classes) * max(len(c) for c in self.classes)

    def __iter__(self) -> Iterator[int]:
        rng = self._next_rng()
        target = max(len(c) for c in self.classes)
        order = np.concatenate([self._stream(c, target, rng) for c in self.classes])
        return iter(rng.permutation(order).tolist())


class BalancedBatchSampler(_EpochSampler):
    """Batches of exactly ``batch_size / C`` images per class, interleaved for ``world_size`` ranks."""

    def __init__(self, labels, batch_size: int, world_size: int = 1, seed: int = 0):
        super().__init__(labels, seed)
        if batch_size % len(self.classes):
            raise ValueError(f"balanced batches need batch_size divisible by the {len(self.classes)} classes, "
                             f"got {batch_size}")
        self.batch_size, self.world_size = batch_size, world_size
        self.per_class = batch_size // len(self.classes)
        self.batches = max(1, len(self.labels) // (batch_size * world_size))  # per rank and epoch

    def __len__(self) -> int:
        return self.batches * self.batch_size * self.world_size

    def __iter__(self) -> Iterator[int]:
        rng = self._next_rng()
        needed = self.batches * self.world_size * self.per_class
        streams = [self._stream(c, needed, rng).reshape(self.batches, self.world_size, self.per_class)
                   for c in self.classes]
        # batches[b, r] is rank r's b-th batch; shuffle within each batch so classes are mixed.
        batches = np.concatenate(streams, axis=2)
        batches = rng.permuted(batches, axis=2)
        # Interleave: position p of rank r's batch b sits at index (b * batch_size + p) * W + r.
        return iter(batches.transpose(0, 2, 1).reshape(-1).tolist())
