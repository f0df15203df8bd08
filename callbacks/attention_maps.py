"""The attention feature maps of the ARL blocks on a few validation images, ``arl`` paper Fig. 7 (a–c).

Fig. 7's left column shows the attention feature map A = 𝔑[F(x)]·x (Eq. 8) of the low (13th layer),
middle (31st) and high (49th) layers of ARL-CNN50 — the blocks ``layer2.0``, ``layer3.2`` and
``layer4.2`` (conv1 = layer 1, three per bottleneck; ``AlphaMonitor`` draws their α, Fig. 7 d–f). At
the end of fit this callback draws, for the first ``n_images`` images of the first validation batch
(the first view of multi-view batches), one row per such block (every block of a network with fewer
than 16, e.g. ARL-CNN14's four): the channel mean of A, scaled to [0, 1] per panel and laid over the
image. Saved as ``plots/attention_maps.png`` (and W&B). Networks without ARL blocks draw nothing.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as L
import torch
from lightning.pytorch.utilities.types import STEP_OUTPUT
from matplotlib.figure import Figure
from typing_extensions import override

from callbacks.alpha_monitor import PAPER_LAYERS, layer_span, paper_blocks
from callbacks.plots import first_view, save_figure
from datamodules.transforms import IMAGENET, Normalisation, denormalise
from dermlab.figures import maps_below_images
from lightning_modules.nets.arl import ARLBottleneck, attention_maps
from lightning_modules.nets.metadata_branch import fed


def attention_figure(net: torch.nn.Module, images: torch.Tensor, layers: tuple[int, ...] = PAPER_LAYERS,
                     kind: str = "attention", normalisation: Normalisation = IMAGENET) -> Figure | None:
    """The Fig. 7 (a–c) figure of ``net`` on ``images`` (B, 3, H, W) normalised with ``normalisation``, or None
    without ARL blocks.
    Rows: the images, then "(a) layer2.0 (layers 11–13)", "(b) …" per block of
    :func:`callbacks.alpha_monitor.paper_blocks`."""
    blocks = [name for name, m in net.named_modules() if isinstance(m, ARLBottleneck)]
    if not blocks:
        return None
    chosen = paper_blocks(blocks, layers)
    was_training = net.training
    net.eval()
    try:
        maps = attention_maps(net, images, chosen, kind)
    finally:
        net.train(was_training)
    rows = {f"({chr(97 + i)}) {b} ({layer_span(blocks, b)})": maps[b].cpu().numpy() for i, b in enumerate(chosen)}
    what = "attention feature map N[F(x)]·x" if kind == "attention" else "attention mask N[F(x)]"
    return maps_below_images(denormalise(images, normalisation), rows,
                             suptitle=f"channel mean of the {what} per ARL block")


class AttentionMaps(L.Callback):
    """Fig. 7 (a–c) at the end of fit: ``n_images`` validation images, one row of maps per chosen block.

    ``kind``: ``attention`` (A = 𝔑[F(x)]·x, the paper's) or ``mask`` (𝔑[F(x)] alone).

    Reads, where the module has them, ``net`` (:class:`~callbacks.protocols.WithNet`; else the module itself is
    searched for ARL blocks) and ``input_normalisation`` (:class:`~callbacks.protocols.InputStatistics`; else
    ImageNet's), both with ``getattr`` defaults.

    Raises:
        ValueError: an unknown ``kind``.
    """

    def __init__(self, n_images: int = 4, layers: tuple[int, ...] = PAPER_LAYERS, kind: str = "attention"):
        if kind not in ("attention", "mask"):
            raise ValueError(f"unknown kind {kind!r}; use attention or mask")
        self.n_images, self.layers, self.kind = n_images, tuple(layers), kind
        self.images: torch.Tensor | None = None
        self.metadata: torch.Tensor | None = None  # a metadata branch's input, beside the images

    @override
    def on_validation_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: STEP_OUTPUT,
                                batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        if self.images is None and isinstance(batch, dict) and "image" in batch:
            self.images = first_view(batch["image"][: self.n_images]).detach().cpu()
            if batch.get("metadata") is not None:
                self.metadata = batch["metadata"][: self.n_images].detach().cpu()

    @override
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero or self.images is None:
            return
        net: torch.nn.Module = getattr(pl_module, "net", pl_module)
        metadata = None if self.metadata is None else self.metadata.to(pl_module.device)
        with fed(net, metadata):  # a metadata model runs its whole network on the images' own fields
            figure = attention_figure(net, self.images.to(pl_module.device), self.layers, self.kind,
                                      getattr(pl_module, "input_normalisation", IMAGENET))
        if figure is not None:
            save_figure(trainer, figure, "attention_maps")
