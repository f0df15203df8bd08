"""Per-split evaluation shared by the classifier and the segmenter bases.

Validation and test steps go to the module's ``_evaluation_step(batch, split)``; at the end of each epoch
``metrics[split]`` (a torchmetrics collection, which syncs across DDP ranks when computed) is logged as
``<split>/<name>`` and reset. A base says only how a batch updates its metrics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torchmetrics import Metric, MetricCollection

EVAL_SPLITS = ("val", "test")


class SplitEvaluation:
    """Mixin for a LightningModule with ``metrics`` (a ModuleDict per split) and ``_evaluation_step``.

    It comes before ``L.LightningModule`` in the bases, so its hooks are the module's; a method that overrides one
    calls ``super()`` to keep the logging.
    """

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Lightning's validation step: ``_evaluation_step(batch, "val")`` (metrics are logged per epoch)."""
        self._evaluation_step(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Lightning's test step: ``_evaluation_step(batch, "test")``."""
        self._evaluation_step(batch, "test")

    def on_validation_epoch_end(self) -> None:
        """Log ``metrics["val"]`` as ``val/<name>`` and reset it."""
        self._log_split("val")

    def on_test_epoch_end(self) -> None:
        """Log ``metrics["test"]`` as ``test/<name>`` and reset it."""
        self._log_split("test")

    def _log_split(self, split: str) -> None:
        self._log_collection(self.metrics[split], split)

    def _log_collection(self, collection: Metric | MetricCollection, split: str) -> None:
        """Log a torchmetrics collection's values as ``<split>/<name>`` and reset it."""
        values = collection.compute()  # torchmetrics gathers the states of every DDP rank here
        self.log_dict({f"{split}/{name}": float(value) for name, value in values.items()}, sync_dist=True)
        collection.reset()
