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
* :class:`MinorityPairSampler` fills each batch with ``per_class`` distinct images of every class and the rest
  in natural proportion, so even the rarest class gives anchor-positive pairs in every batch (``isic2018`` §3's
  triplets); on the epochs its schedule leaves out it shuffles naturally. Same interleaving as the balanced one.

Each ``__iter__`` is one epoch with a new permutation seeded from (seed, epoch), identical on every rank because
all ranks start from the same seed. Lightning calls ``set_epoch`` before each training epoch, so the epoch a
resumed run replays gets the permutation it had the first time. Every sampler yields *epoch-tagged* indices,
``epoch * len(dataset) + index``: :class:`~datamodules.datasets.image_dataset.ImageTableDataset` takes the epoch
and the position from them to seed that sample's augmentation (:mod:`dermlab.runtime.seeding`),
whichever worker loads it.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from numpy.typing import ArrayLike
from torch.utils.data import Sampler


class _EpochSampler(Sampler[int]):
    def __init__(self, labels: ArrayLike, seed: int = 0) -> None:
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
    """Batches of exactly ``batch_size / C`` images per class, interleaved for ``world_size`` ranks.

    Args:
        labels: (N,) class index of every dataset position.
        batch_size: images per batch and rank, a multiple of the number of classes C.
        world_size: DDP ranks.
        seed: the run's seed; each epoch's draw is seeded from (seed, epoch).

    Raises:
        ValueError: ``batch_size`` not divisible by C.
    """

    def __init__(self, labels: ArrayLike, batch_size: int, world_size: int = 1, seed: int = 0) -> None:
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


class MinorityPairSampler(_EpochSampler):
    """Batches with ``per_class`` distinct images of every class, the other places filled in natural proportion.

    The ``isic2018`` paper (002, §3 "Triplet sampling", Eq. 3) draws triplets "from the imbalanced data where 2
    of them are from the same minor class and 1 is from the major class". In natural batches of 64 from ISIC
    2018 task 3, DF (115 of 10015 images) and VASC (142) are rarely present twice, so they give about 1 % of the
    mined triplets. Here each batch holds ``per_class`` images of each of the C classes (drawn without
    replacement, so a pair never repeats one image) and ``batch_size − C·per_class`` images from a shuffled pass
    over all images (skipping any already in the batch): cross-entropy still sees mostly natural proportions.

    ``every`` says which epochs are paired: epoch e (0-based) when ``(e + 1) % every == 0`` — the
    ``triplet_every`` rule of :class:`lightning_modules.triplet.TripletClassifier` — so 1 pairs every epoch and 0 none.
    The other epochs are a natural shuffle of the same length (``batches · batch_size · world_size`` indices: at
    most ``batch_size · world_size − 1`` images, different ones each epoch, are left out of that epoch).

    Args:
        labels: (N,) class index of every dataset position.
        batch_size: images per batch and rank (use the DataLoader with this ``batch_size`` and ``drop_last``).
        per_class: images of every class in each paired batch (≥ 2 for a pair).
        world_size: DDP ranks; batches interleave as in :class:`BalancedBatchSampler`.
        seed: the run's seed; each epoch's draw is seeded from (seed, epoch).
        every: the pairing period above.

    Raises:
        ValueError: ``per_class`` < 1, C·``per_class`` > ``batch_size``, fewer images than ``batch_size``, or a
            class with fewer than ``per_class`` images (it could not give distinct pairs).
    """

    def __init__(self, labels: ArrayLike, batch_size: int, per_class: int = 2, world_size: int = 1, seed: int = 0,
                 every: int = 1) -> None:
        super().__init__(labels, seed)
        if per_class < 1 or per_class * len(self.classes) > batch_size:
            raise ValueError(f"{per_class} images of each of the {len(self.classes)} classes do not fit a batch of "
                             f"{batch_size}")
        if batch_size > len(self.labels):
            raise ValueError(f"a batch of {batch_size} distinct images needs at least as many, got {len(self.labels)}")
        small = [int(self.labels[c[0]]) for c in self.classes if len(c) < per_class]
        if small:
            raise ValueError(f"class(es) {small} have fewer than {per_class} training images: no distinct pairs")
        self.batch_size, self.per_class, self.world_size, self.every = batch_size, per_class, world_size, every
        self.batches = max(1, len(self.labels) // (batch_size * world_size))  # per rank and epoch

    def __len__(self) -> int:
        return self.batches * self.batch_size * self.world_size

    def paired(self, epoch: int) -> bool:
        """Whether ``epoch`` (0-based) gets paired batches."""
        return bool(self.every) and (epoch + 1) % self.every == 0

    def __iter__(self) -> Iterator[int]:
        paired = self.paired(self.epoch)
        rng, offset = self._next_rng()
        if not paired:
            return iter((self._stream(np.arange(len(self.labels)), len(self), rng) + offset).tolist())
        order, position = rng.permutation(len(self.labels)), 0
        batches = np.empty((self.batches, self.world_size, self.batch_size), dtype=np.int64)
        for b in range(self.batches):
            for r in range(self.world_size):
                chosen = [int(i) for c in self.classes for i in rng.choice(c, self.per_class, replace=False)]
                taken = set(chosen)
                while len(chosen) < self.batch_size:
                    if position == len(order):
                        order, position = rng.permutation(len(self.labels)), 0
                    index = int(order[position])
                    position += 1
                    if index not in taken:
                        chosen.append(index)
                        taken.add(index)
                batches[b, r] = rng.permutation(chosen)
        # Interleave: position p of rank r's batch b sits at index (b * batch_size + p) * W + r.
        return iter((batches.transpose(0, 2, 1).reshape(-1) + offset).tolist())
