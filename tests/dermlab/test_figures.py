"""The shared figure helpers draw what they are given and write PNGs."""

from __future__ import annotations

import numpy as np
from PIL import Image

from dermlab import figures


def test_every_helper_writes_a_png(tmp_path):
    rng = np.random.default_rng(0)
    images = [rng.random((16, 16, 3)) for _ in range(5)]
    made = {
        "grid": figures.image_grid(images, [rng.random((16, 16)) for _ in range(5)], list("abcde"), columns=3),
        "heat": figures.heatmaps({f"L{i}": rng.random((8, 8)) for i in range(4)}),
        "bars": figures.per_class_bars({"CE": {"MEL": 0.5, "NV": 0.9}, "FL": {"MEL": 0.6, "NV": 0.85}}),
        "curves": figures.curves({"block1": [0.001, 0.01, 0.02], "block2": [0.001, 0.02, 0.05]}),
    }
    drawn = {name: (sum(len(a.images) for a in f.axes), sum(len(a.lines) for a in f.axes),
                    sum(len(a.patches) for a in f.axes)) for name, f in made.items()}
    assert drawn["grid"][0] >= 5 and drawn["heat"][0] == 4  # one picture per image / per heat map
    assert drawn["curves"][1] == 2 and drawn["bars"][2] == 4  # a curve per block, a bar per loss and class
    for name, figure in made.items():
        path = figures.save(figure, tmp_path / f"{name}.png")
        assert Image.open(path).size[0] > 100


def test_image_grid_has_one_panel_per_image():
    figure = figures.image_grid([np.zeros((4, 4, 3))] * 5, columns=3)
    assert len(figure.axes) == 6 and sum(bool(a.images) for a in figure.axes) == 5
