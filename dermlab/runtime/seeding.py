"""One seed for every random stream of a run, and the same streams again after a resume.

The run's seed is the one ``seed_everything`` set (LightningCLI's ``seed_everything``; Lightning keeps it in
``$PL_GLOBAL_SEED``). From it, each stream gets its own seed, derived with NumPy's ``SeedSequence`` from keys
that do not depend on how the run got there:

* **per epoch**, in the main process: torch, NumPy and Python's ``random`` are reseeded from (seed, epoch) at
  the start of every training epoch (dropout, patch dropout, anything a module or callback draws), so an epoch
  replayed after a resume draws what it drew the first time;
* **per sample**, wherever it is loaded: the augmentation pipeline's generators (albumentations 2.x keeps its
  own) are seeded from (seed, epoch, position in the epoch) in training, so neither the number of DataLoader
  workers nor which worker loads an image changes what it gets; the evaluation pipelines' draws (``arl``'s random
  test views) from (seed, epoch, the image's name, :func:`name_key`), so an image gets the same views whichever
  list it is evaluated in (a test split, or ``dermlab classify`` on any files);
* **per epoch**, in the samplers: the training order is a permutation seeded from (seed, epoch).
"""

from __future__ import annotations

import os
import random

import numpy as np


def run_seed(default: int = 0) -> int:
    """The run's global seed (``$PL_GLOBAL_SEED``, set by ``seed_everything``), else ``default``."""
    return int(os.environ.get("PL_GLOBAL_SEED", default))


def derive(*keys: int) -> int:
    """A 32-bit seed for the stream named by ``keys`` (e.g. seed, epoch, sample): different keys, independent
    streams."""
    return int(np.random.SeedSequence([int(k) % 2**32 for k in keys]).generate_state(1)[0])


def name_key(name: str) -> tuple[int, int]:
    """Two 32-bit words of the SHA-256 of ``name`` (UTF-8): a key for :func:`derive` that is the same in every
    process and session (unlike Python's ``hash``)."""
    import hashlib

    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "little"), int.from_bytes(digest[4:8], "little")


def seed_epoch(seed: int, epoch: int) -> None:
    """Reseed torch, NumPy and Python's ``random`` for training epoch ``epoch`` of a run seeded ``seed``."""
    import torch

    value = derive(seed, epoch, 0x5EED)
    torch.manual_seed(value)
    np.random.seed(value)
    random.seed(value)
