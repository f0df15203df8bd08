"""Class-imbalance samplers shared by every datamodule.

Both are plain index samplers, so Lightning's automatic DDP wrapping (``DistributedSamplerWrapper``
with ``shuffle=False``, which hands rank r the indices r, r + W, r + 2W, …) keeps them correct:

* :class:`OversamplingSampler` repeats every class (reshuffled each epoch) up to the size of the
  largest class — the ``patch`` paper's "oversampling";
* :class:`BalancedBatchSampler` yields batches holding exactly ``batch_size / C`` images of every
  class. Its order interleaves the ranks' batches so that, after DDP slicing, each rank's
  consecutive ``batch_size`` indices form one balanced batch and no two ranks see the same image
  within a pass over a class. Use it with ``drop_last=True`` and the same ``batch_size``.

* :class:`SeededRandomSampler` is plain shuffling, seeded from (seed, epoch) instead of torch's global
  generator.

Each ``__iter__`` is one epoch with a new permutation seeded from (seed, epoch), identical on every rank because
all ranks start from the same seed. Lightning calls ``set_epoch`` before each training epoch, so the epoch a
resumed run replays gets the permutation it had the first time. Every sampler yields *epoch-tagged* indices,
``epoch * len(dataset) + index``: :class:`~datamodules.base.ImageTableDataset` takes the epoch and the position
from them to seed that sample's augmentation (:mod:`dermlab.seeding`), whichever worker loads it.
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

    def _next_rng(self) -> tuple[np.random.Generator, int]:
        """This epoch's generator and its index offset (``epoch * len(dataset)``); then the next epoch."""
        rng, offset = np.random.default_rng([self.seed, self.epoch]), self.epoch * len(self.labels)
        self.epoch += 1
        return rng, offset

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
        rng, offset = self._next_rng()
        target = max(len(c) for c in self.classes)
        order = np.concatenate([self._stream(c, target, rng) for c in self.classes])
        return iter((rng.permutation(order) + offset).tolist())


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
        rng, offset = self._next_rng()
        needed = self.batches * self.world_size * self.per_class
        streams = [self._stream(c, needed, rng).reshape(self.batches, self.world_size, self.per_class)
                   for c in self.classes]
        # batches[b, r] is rank r's b-th batch; shuffle within each batch so classes are mixed.
        batches = np.concatenate(streams, axis=2)
        batches = rng.permuted(batches, axis=2)
        # Interleave: position p of rank r's batch b sits at index (b * batch_size + p) * W + r.
        return iter((batches.transpose(0, 2, 1).reshape(-1) + offset).tolist())


class SeededRandomSampler(_EpochSampler):
    """Every index once per epoch in a random order seeded from (seed, epoch)."""

    def __init__(self, size: int, seed: int = 0):
        super().__init__(np.zeros(size, dtype=int), seed)

    def __len__(self) -> int:
        return len(self.labels)

    def __iter__(self) -> Iterator[int]:
        rng, offset = self._next_rng()
        return iter((rng.permutation(len(self.labels)) + offset).tolist())
