"""Imbalance samplers (``datamodules/samplers.py``): balanced batches stay balanced, also on HAM10000's proportions,
and distinct per rank under Lightning's DDP wrapping."""

from __future__ import annotations

import numpy as np
import pytest
from lightning.fabric.utilities.distributed import DistributedSamplerWrapper

from datamodules.samplers import BalancedBatchSampler, OversamplingSampler

LABELS = np.array([0] * 60 + [1] * 24 + [2] * 12)


def rank_batches(sampler, world: int, rank: int, batch_size: int) -> list[list[int]]:
    """What rank ``rank`` gets from Lightning's DDP wrapper (shuffle=False, as Lightning sets for custom samplers)."""
    wrapped = DistributedSamplerWrapper(sampler, num_replicas=world, rank=rank, shuffle=False)
    indices = list(wrapped)
    return [indices[i:i + batch_size] for i in range(0, len(indices) - batch_size + 1, batch_size)]


@pytest.mark.parametrize("world", [1, 2, 3])
def test_balanced_batches_per_rank_and_distinct_across_ranks(world):
    batch_size = 6
    per_rank = []
    for rank in range(world):
        sampler = BalancedBatchSampler(LABELS, batch_size, world_size=world, seed=5)  # each rank builds its own
        batches = rank_batches(sampler, world, rank, batch_size)
        assert len(batches) == len(LABELS) // (batch_size * world)
        for batch in batches:
            assert np.bincount(LABELS[batch], minlength=3).tolist() == [2, 2, 2]
        per_rank.append([i for b in batches for i in b])
    majority = [{i for i in seen if LABELS[i] == 0} for seen in per_rank]
    for a in range(world):
        for b in range(a + 1, world):
            assert not majority[a] & majority[b]  # no image of the largest class on two ranks in one epoch


def test_balanced_batches_change_each_epoch_but_are_reproducible():
    first, second = BalancedBatchSampler(LABELS, 6, seed=1), BalancedBatchSampler(LABELS, 6, seed=1)
    epoch0, epoch1 = list(first), list(first)
    assert epoch0 != epoch1 and list(second) == epoch0


def test_balanced_batches_need_a_divisible_batch_size():
    with pytest.raises(ValueError, match="divisible"):
        BalancedBatchSampler(LABELS, 7)


def test_oversampling_equalises_class_counts():
    order = list(OversamplingSampler(LABELS, seed=0))
    assert np.bincount(LABELS[order]).tolist() == [60, 60, 60]
    assert len(set(i for i in order if LABELS[i] == 0)) == 60  # the largest class appears once each


def test_balanced_sampling_through_the_datamodule(tmp_path):
    from datamodules import HAM10000DataModule
    from datamodules.synthetic import write_synthetic

    write_synthetic("ham10000", tmp_path, n=200, size=32, seed=0)  # every class in the 3 training folds
    data = HAM10000DataModule(str(tmp_path), split="kfold", n_folds=5, sampling="balanced",
                              batch_size=7, image_size=32, num_workers=0)
    assert (np.bincount(data.table("train").labels, minlength=7) > 0).all()
    for batch in data.train_dataloader():
        assert np.bincount(batch["label"].numpy(), minlength=7).tolist() == [1] * 7


def test_balanced_batches_on_ham_proportions_hold_every_class_equally():
    labels = np.repeat(np.arange(7), [1113, 6705, 514, 327, 1099, 115, 142])
    order = list(BalancedBatchSampler(labels, batch_size=21, seed=0))  # indices, batch after batch
    assert len(order) >= 21 * 50
    for start in range(0, 21 * 50, 21):
        assert np.bincount(labels[order[start:start + 21]], minlength=7).tolist() == [3] * 7
