"""The SegAN critic C and its multi-scale L1 loss (``isic2018`` paper 002 §1, Eq. 1–2).

The critic reads an image masked by a label map and returns the features of each of its blocks — the
"hierarchical features" f_C^i of Eq. 2. Each block is a global convolution (a 1×k then k×1 path summed with
a k×1 then 1×k path, k = 9: the receptive field of a 9×9 kernel with far fewer weights, Peng et al.),
BN, ReLU, followed by a 3×3 convolution, BN, ReLU. The 3×3 convolution has stride 2, so the five blocks see
five scales (the paper does not state the stride; SegAN's critic halves the resolution per layer too).
"""

from __future__ import annotations

import torch
from torch import nn
from typing_extensions import override


class GlobalConvBlock(nn.Module):
    """(1×k → k×1) + (k×1 → 1×k), BN, ReLU; then 3×3 conv (``stride``), BN, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 9, stride: int = 2):
        super().__init__()
        pad = kernel // 2
        self.left = nn.Sequential(nn.Conv2d(in_channels, out_channels, (1, kernel), padding=(0, pad)),
                                  nn.Conv2d(out_channels, out_channels, (kernel, 1), padding=(pad, 0)))
        self.right = nn.Sequential(nn.Conv2d(in_channels, out_channels, (kernel, 1), padding=(pad, 0)),
                                   nn.Conv2d(out_channels, out_channels, (1, kernel), padding=(0, pad)))
        self.merge = nn.Sequential(nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))
        self.conv = nn.Sequential(nn.Conv2d(out_channels, out_channels, 3, stride=stride, padding=1, bias=False),
                                  nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))

    @override
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.merge(self.left(x) + self.right(x)))


class SegANCritic(nn.Module):
    """Five global-convolution blocks of widths ``width × (1, 2, 4, 8, 8)``; ``forward`` returns all five
    feature maps (largest first)."""

    def __init__(self, in_channels: int = 3, width: int = 64, blocks: int = 5, kernel: int = 9):
        super().__init__()
        widths = [width * min(2 ** i, 8) for i in range(blocks)]
        self.blocks = nn.ModuleList(GlobalConvBlock(c_in, c_out, kernel)
                                    for c_in, c_out in zip([in_channels, *widths[:-1]], widths, strict=True))

    @override
    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for block in self.blocks:
            x = block(x)
            features.append(x)
        return features

    @torch.no_grad()
    def clip_weights(self, bound: float) -> None:
        """Clamp every parameter to [−bound, bound] (done after each critic step, §1 and SegAN [17])."""
        for parameter in self.parameters():
            parameter.clamp_(-bound, bound)


def multiscale_l1(predicted: list[torch.Tensor], truth: list[torch.Tensor]) -> torch.Tensor:
    """Eq. 2: (1/L) Σ_i ‖f_C^i(x ∘ S(x)) − f_C^i(x ∘ y)‖₁, with each layer's L1 distance taken as the mean
    absolute difference over its elements (the paper's "MAE"), so small deep maps weigh as much as large
    shallow ones; the batch mean gives Eq. 1's (1/N) Σ_n."""
    if len(predicted) != len(truth) or not predicted:
        raise ValueError(f"need the same, non-zero number of critic layers, got {len(predicted)} and {len(truth)}")
    return torch.stack([(p - t).abs().mean() for p, t in zip(predicted, truth, strict=True)]).mean()
