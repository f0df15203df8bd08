"""Per-split evaluation shared by the classifier and the segmenter bases.

Validation and test steps go to the module's ``_evaluation_step(batch, split)``; at the end of each epoch
``metrics[split]`` (a torchmetrics collection, which syncs across DDP ranks when computed) is logged as
``<split>/<name>`` and reset. A base says only how a batch updates its metrics.
"""

from __future__ import annotations

EVAL_SPLITS = ("val", "test")


class SplitEvaluation:
    """Mixin for a LightningModule with ``metrics`` (a ModuleDict per split) and ``_evaluation_step``."""

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluation_step(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluation_step(batch, "test")

    def on_validation_epoch_end(self) -> None:
        self._log_split("val")

    def on_test_epoch_end(self) -> None:
        self._log_split("test")

    def _log_split(self, split: str) -> None:
        self._log_collection(self.metrics[split], split)

    def _log_collection(self, collection, split: str) -> None:
        """Log a torchmetrics collection's values as ``<split>/<name>`` and reset it."""
        values = collection.compute()  # torchmetrics gathers the states of every DDP rank here
        self.log_dict({f"{split}/{name}": float(value) for name, value in values.items()}, sync_dist=True)
        collection.reset()
