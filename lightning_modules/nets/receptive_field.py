"""Receptive-field geometry of a plain chain of layers (a VGG ``features`` ``nn.Sequential``).

For each layer output: r, the receptive-field side in input pixels; j, the jump (input pixels between
neighbouring outputs, the product of the strides so far); and c0, the input coordinate of the centre of output 0's
field (Araujo et al., "Computing receptive fields of convolutional neural networks", Distill 2019, Eqs. 1–3 in
that article's notation). Output i of a layer sees input pixels c0 + i·j ± (r − 1)/2, per axis.

Only Conv2d, MaxPool2d / AvgPool2d without ``ceil_mode`` and layers that keep positions (BatchNorm, ReLU,
Dropout, Identity) are understood; :func:`chain_geometry` returns None for anything else.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

POSITIONWISE = (nn.modules.batchnorm._BatchNorm, nn.ReLU, nn.LeakyReLU, nn.ReLU6, nn.Dropout, nn.Identity)


@dataclass(frozen=True)
class FieldGeometry:
    """Receptive field of one layer's outputs along one axis (in input pixels): side ``r``, jump ``j``, centre of
    output 0 ``c0``, and the layer's output length ``n`` for an input of the size it was computed for."""

    r: int
    j: int
    c0: float
    n: int

    def window(self, index: int, size: int) -> tuple[int, int]:
        """Input pixels [lo, hi) that output ``index`` depends on, clipped to an input of ``size`` pixels."""
        centre = self.c0 + index * self.j
        return max(0, int(centre - (self.r - 1) / 2)), min(size, int(centre + (self.r - 1) / 2) + 1)


def _pair(value: int | tuple[int, ...]) -> int:
    values = value if isinstance(value, tuple) else (value, value)
    if values[0] != values[1]:
        raise ValueError("only square kernels, strides and paddings are handled")
    return int(values[0])


def chain_geometry(chain: nn.Sequential, size: int) -> list[FieldGeometry] | None:
    """The geometry of each layer's output in ``chain`` (one entry per layer; a position-wise layer repeats its
    input's) for a square input of ``size`` pixels; None if a layer is not understood."""
    r, j, c0, n = 1, 1, 0.0, size
    geometry = []
    for layer in chain:
        if isinstance(layer, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            if getattr(layer, "ceil_mode", False) or isinstance(layer.padding, str):
                return None
            try:
                k, s, p = _pair(layer.kernel_size), _pair(layer.stride), _pair(layer.padding)
                d = _pair(getattr(layer, "dilation", 1))
            except ValueError:
                return None
            effective = d * (k - 1) + 1
            r, c0, j = r + (effective - 1) * j, c0 + ((effective - 1) / 2 - p) * j, j * s
            n = (n + 2 * p - effective) // s + 1
        elif not isinstance(layer, POSITIONWISE):
            return None
        geometry.append(FieldGeometry(r, j, c0, n))
    return geometry
