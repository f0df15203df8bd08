"""Benchmark-only data for ``dermlab fit``: one synthetic batch held on the training device (no input pipeline).

Used by ``benchmarks/gpu_resnet50.py`` so that the LightningCLI path is timed on the same kind of device-resident
batch as its bare PyTorch loop: what differs between the two is the training loop alone. Not a data set of the
suite (no files, no splits, no validation); pass it as ``--data '{class_path: resident_data.ResidentBatches, ...}'``
with ``benchmarks/`` on the Python path.
"""

from __future__ import annotations

import torch

from datamodules.base import SkinDataModule


def resident_batch(batch_size: int, size: int, classes: int, device: torch.device | str) -> dict[str, torch.Tensor]:
    """One synthetic batch on ``device``: ``image`` (B, 3, size, size) float32 N(0, 1), ``label`` (B,) int64 in
    [0, classes), drawn from seed 0."""
    generator = torch.Generator().manual_seed(0)
    return {"image": torch.randn(batch_size, 3, size, size, generator=generator).to(device),
            "label": torch.randint(0, classes, (batch_size,), generator=generator).to(device)}


class Repeated:
    """An iterable of ``times`` references to the same batch: a DataLoader stand-in with a length."""

    def __init__(self, batch: dict, times: int):
        self.batch, self.times = batch, times

    def __len__(self) -> int:
        return self.times

    def __iter__(self):
        return (self.batch for _ in range(self.times))


class ResidentBatches(SkinDataModule):
    """One batch of ``batch_size`` synthetic ``image_size`` px images on the trainer's device, served ``steps``
    times per training epoch; ``classes`` classes named ``class0``, ``class1``, ... (``root`` is unused)."""

    def __init__(self, root: str = "", image_size: int = 224, batch_size: int = 256, classes: int = 2,
                 steps: int = 100):
        super().__init__(root, image_size=image_size, batch_size=batch_size, num_workers=0)
        self.class_names = tuple(f"class{i}" for i in range(classes))
        self.steps = steps

    def setup(self, stage: str | None = None) -> None:
        pass  # nothing to read or audit

    @property
    def class_counts(self) -> torch.Tensor:
        return torch.ones(self.num_classes, dtype=torch.long)

    def train_dataloader(self) -> Repeated:
        device = self.trainer.strategy.root_device
        return Repeated(resident_batch(self.batch_size, self.image_size, self.num_classes, device), self.steps)

    def val_dataloader(self) -> list:
        return []
