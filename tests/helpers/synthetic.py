"""The smallest image side ``dermlab synth`` accepts."""

from __future__ import annotations

SIDE = 8  # pixels: the smallest --size the command accepts
