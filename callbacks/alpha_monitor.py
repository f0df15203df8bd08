"""The learned scale gates α of every ARL block over epochs, ``arl`` paper Fig. 7 (right column).

Logs ``alpha/<block>`` (e.g. ``alpha/layer3.2``) after every training epoch and, at the end of fit,
plots α against the epoch for the blocks holding the paper's 13th, 31st and 49th layers (counting
conv1 as layer 1 and three layers per bottleneck: ``layer2.0``, ``layer3.2`` and ``layer4.2`` of
ARL-CNN50), or for every block when the network has fewer. Saved as ``plots/alpha.png`` (and W&B).
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as L
from typing_extensions import override

from callbacks.plots import save_figure
from dermlab.figures import curves
from lightning_modules.nets.arl import alphas

PAPER_LAYERS = (13, 31, 49)


def block_of_layer(blocks: list[str], layer: int) -> str | None:
    """The bottleneck holding weight layer ``layer`` (conv1 = 1, then three per block); None past the end."""
    index = (layer - 2) // 3
    return blocks[index] if 0 <= index < len(blocks) else None


def paper_blocks(blocks: list[str], layers: tuple[int, ...] = PAPER_LAYERS) -> list[str]:
    """The blocks Fig. 7 shows: those holding ``layers`` when the network has ARL-CNN50's 16 blocks or more,
    else every block (ARL-CNN14's four hold layers 2–13, so the paper's 31 and 49 do not exist)."""
    if len(blocks) < 16:
        return list(blocks)
    return [b for b in dict.fromkeys(block_of_layer(blocks, layer) for layer in layers) if b]


def layer_span(blocks: list[str], block: str) -> str:
    """The weight layers of ``block`` as the paper counts them (conv1 = 1, three per block): "layers 11–13"."""
    first = 2 + 3 * blocks.index(block)
    return f"layers {first}–{first + 2}"


class AlphaMonitor(L.Callback):
    """Fig. 7 (d–f): every ARL block's α per training epoch, logged and, at the end of fit, plotted (module docstring).

    Needs nothing beyond a LightningModule: the blocks are found among its modules
    (:func:`lightning_modules.nets.arl.alphas`); a network without ARL blocks logs and draws nothing. The history
    is kept in the checkpoint, so a resumed run plots every epoch.

    Args:
        layers: the paper's weight layers (conv1 = 1, three per bottleneck) whose blocks the plot shows on a network
            of 16 blocks or more; a smaller one shows every block.
    """

    def __init__(self, layers: tuple[int, ...] = PAPER_LAYERS):
        self.layers = layers
        self.history: dict[str, list[float]] = {}

    @override
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        values = alphas(pl_module)
        for name, value in values.items():
            self.history.setdefault(name, []).append(value)
        if values:
            pl_module.log_dict({f"alpha/{name.removeprefix('net.')}": v for name, v in values.items()})

    @override
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero or not self.history:
            return
        blocks = list(self.history)
        series = {f"{b.removeprefix('net.')} ({layer_span(blocks, b)})": self.history[b]
                  for b in paper_blocks(blocks, self.layers)}
        save_figure(trainer, curves(series, ylabel="α", title="learned scale gate α per ARL block"), "alpha")

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = state_dict.get("history", {})
