"""Figures shared by every paper, so they look alike: CAM overlays, heat maps, per-class bars, curves,
forest plots.

Each function returns a matplotlib Figure; :func:`save` writes it as PNG (and closes it). Used by the
plot callbacks and by the per-paper figure scripts (LERF heat maps, CAM steps, recall bars, α over
epochs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.patches  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

CMAP = "jet"
STYLE = {"font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "legend.fontsize": 7, "figure.dpi": 110}


def _grid(n: int, columns: int, size: float = 1.6) -> tuple[Figure, list[Axes]]:
    """A figure of ``n`` panels, ``columns`` to a row (fewer for n < columns), each ``size`` inches wide, axes
    switched off; its axes row by row (empty trailing panels included)."""
    columns = max(1, min(columns, n))
    rows = int(np.ceil(n / columns))
    with plt.rc_context(STYLE):
        figure, axes = plt.subplots(rows, columns, figsize=(size * columns, (size + 0.15) * rows), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    return figure, list(axes.flat)


def cam_overlay(axis: Axes, image: np.ndarray, cam: np.ndarray | None = None, title: str = "",
                alpha: float = 0.4) -> None:
    """Draw ``image`` (H, W, 3 in [0, 1]) on ``axis`` with a (H, W) class activation map in [0, 1] blended on top
    (``jet``, opacity ``alpha``; values outside [0, 1] are clipped by the colour scale, not rescaled)."""
    axis.imshow(image)
    if cam is not None:
        axis.imshow(cam, cmap=CMAP, alpha=alpha, vmin=0, vmax=1)
    axis.set_title(title, fontsize=6)
    axis.axis("off")


def image_grid(images: Sequence[np.ndarray] | np.ndarray, cams: Sequence[np.ndarray | None] | None = None,
               titles: Sequence[str] | None = None, columns: int = 8, suptitle: str = "") -> Figure:
    """Images (H, W, 3 in [0, 1]; a list or an (N, H, W, 3) array) in a grid, each with its (H, W) CAM where
    ``cams`` holds one (None: the image alone)."""
    figure, axes = _grid(len(images), columns)
    for i, image in enumerate(images):
        cam_overlay(axes[i], image, None if cams is None else cams[i], "" if titles is None else titles[i])
    if suptitle:
        figure.suptitle(suptitle, fontsize=8)
    return figure


def maps_below_images(images: Sequence[np.ndarray] | np.ndarray, rows: Mapping[str, Sequence[np.ndarray] | np.ndarray],
                      suptitle: str = "") -> Figure:
    """Images (first row) above one row of maps per name (e.g. ``arl`` Fig. 7 a–c: the attention feature
    maps of three blocks). Each map (h, w), any range, is scaled to [0, 1] on its own, resized to its image
    and blended on top; the row's name titles its first panel. Panels: (1 + len(rows)) × len(images)."""
    n = len(images)
    figure, axes = _grid((1 + len(rows)) * n, n)
    for i, image in enumerate(images):
        cam_overlay(axes[i], image, title=f"image {i + 1}")
    for r, (name, maps) in enumerate(rows.items(), start=1):
        for i, (image, values) in enumerate(zip(images, maps, strict=True)):
            values = np.asarray(values, float)
            values = (values - values.min()) / max(float(np.ptp(values)), 1e-12)
            cam_overlay(axes[r * n + i], image, _resize(values, image.shape[:2]), name if i == 0 else "")
    if suptitle:
        figure.suptitle(suptitle, fontsize=8)
    return figure


def _resize(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A (h, w) map resized bilinearly to ``size`` (H, W)."""
    import torch
    import torch.nn.functional as F

    tensor = torch.as_tensor(values, dtype=torch.float32)[None, None]
    return F.interpolate(tensor, size=size, mode="bilinear", align_corners=False)[0, 0].numpy()


def masks_below_images(images: Sequence[np.ndarray], masks: Sequence[np.ndarray],
                       truths: Sequence[np.ndarray] | None = None, titles: Sequence[str] | None = None,
                       suptitle: str = "") -> Figure:
    """Images (first row) above their predicted masks (second row), ``isic2018`` Fig. 1; the ground truth's
    outline, when given, is drawn in red on the mask."""
    n = len(images)
    figure, axes = _grid(2 * n, n)
    for i, (image, mask) in enumerate(zip(images, masks, strict=True)):
        axes[i].imshow(image)
        axes[i].set_title("" if titles is None else titles[i], fontsize=6)
        axes[n + i].imshow(mask, cmap="gray", vmin=0, vmax=1)
        if truths is not None:
            axes[n + i].contour(truths[i], levels=[0.5], colors="red", linewidths=0.6)
    if suptitle:
        figure.suptitle(suptitle, fontsize=8)
    return figure


def crop_weights(images: Sequence[np.ndarray], boxes: Sequence[tuple[int, int]], size: int,
                 weights: np.ndarray, titles: Sequence[str] | None = None, columns: int = 4,
                 suptitle: str = "") -> Figure:
    """Images with the border of every crop drawn brighter the higher its weight (patch paper Fig. 4).

    ``boxes`` are the crops' top-left corners (shared by all images), ``weights`` (images, crops); the
    colour scale spans each image's own lowest to highest weight, the printed number is the weight itself.
    """
    figure, axes = _grid(len(images), columns, size=2.4)
    colours = plt.get_cmap("inferno")
    for i, image in enumerate(images):
        axes[i].imshow(image)
        low, high = float(weights[i].min()), float(weights[i].max())
        order = np.argsort(weights[i])  # brightest drawn last, on top where crops overlap
        for k in order:
            top, left = boxes[k]
            level = 0.15 + 0.85 * (float(weights[i][k]) - low) / max(high - low, 1e-12)
            axes[i].add_patch(matplotlib.patches.Rectangle((left + 1, top + 1), size - 2, size - 2, fill=False,
                                                           linewidth=2.0, edgecolor=colours(level)))
            axes[i].text(left + size / 2, top + size / 2, f"{weights[i][k]:.2f}", color="white", fontsize=5,
                         ha="center", va="center")
        axes[i].set_title("" if titles is None else titles[i], fontsize=6)
    if suptitle:
        figure.suptitle(suptitle, fontsize=8)
    return figure


def heatmaps(maps: Mapping[str, np.ndarray], columns: int = 6, suptitle: str = "", cmap: str = "viridis") -> Figure:
    """One panel per named 2-D map with a shared colour scale (e.g. LERF per layer, Fig. 2 of dds)."""
    figure, axes = _grid(len(maps), columns)
    high = max(float(np.max(m)) for m in maps.values()) or 1.0
    for axis, (name, values) in zip(axes, maps.items(), strict=False):
        axis.imshow(values, cmap=cmap, vmin=0, vmax=high)
        axis.set_title(name, fontsize=7)
    if suptitle:
        figure.suptitle(suptitle, fontsize=8)
    return figure


def per_class_bars(values: Mapping[str, Mapping[str, float]], ylabel: str = "recall", title: str = "") -> Figure:
    """Grouped bars: one group per class, one bar per setting (e.g. recall per weighting strategy)."""
    settings = list(values)
    classes = list(next(iter(values.values())))
    width = 0.8 / len(settings)
    with plt.rc_context(STYLE):
        figure, axis = plt.subplots(figsize=(max(4.0, 0.9 * len(classes) * max(1, len(settings) / 3)), 2.8))
    x = np.arange(len(classes))
    for i, setting in enumerate(settings):
        axis.bar(x + (i - (len(settings) - 1) / 2) * width, [values[setting][c] for c in classes], width, label=setting)
    axis.set_xticks(x, classes)
    axis.set_ylabel(ylabel)
    axis.set_ylim(0, 1)
    axis.legend(ncols=min(4, len(settings)))
    axis.set_title(title)
    return figure


def error_lines(series: Mapping[str, tuple[Sequence[float], Sequence[float], Sequence[float]]], xlabel: str = "",
                ylabel: str = "", title: str = "") -> Figure:
    """One line per setting over a swept value, with ±std bars: {label: (x, mean, std)} (e.g. patch Fig. 5)."""
    with plt.rc_context(STYLE):
        figure, axis = plt.subplots(figsize=(4.0, 2.8))
    for label, (x, mean, std) in series.items():
        axis.errorbar(x, mean, yerr=np.nan_to_num(np.asarray(std, float)), marker="o", capsize=3, label=label)
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    if len(series) > 1:
        axis.legend()
    axis.grid(alpha=0.3)
    return figure


def curves(series: Mapping[str, Sequence[float]], xlabel: str = "epoch", ylabel: str = "",
           title: str = "") -> Figure:
    """Lines over epochs or steps (e.g. the learned α per ARL block, Fig. 7 of arl)."""
    with plt.rc_context(STYLE):
        figure, axis = plt.subplots(figsize=(4.0, 2.8))
    for name, values in series.items():
        axis.plot(np.arange(len(values)), values, label=name)
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    axis.grid(alpha=0.3)
    if len(series) > 1:
        axis.legend()
    return figure


def forest(labels: Sequence[str], panels: Mapping[str, tuple[Sequence[float], Sequence[float], Sequence[float]]],
           reference: Mapping[str, float] | None = None, title: str = "") -> Figure:
    """A forest plot: one row per label (top to bottom), one panel per metric {name: (estimates, lows, highs)},
    each row a point with its interval as a line, ``n/a`` where the estimate is NaN, and a dotted vertical line at
    ``reference[name]`` (e.g. the whole test set's value). Panels span [0, 1] (AUC, sensitivity, specificity)."""
    rows = len(labels)
    with plt.rc_context(STYLE):
        figure, axes = plt.subplots(1, len(panels), sharey=True, squeeze=False,
                                    figsize=(2.0 * len(panels) + 1.8, 0.6 + 0.22 * rows))
    y = np.arange(rows)[::-1]
    for axis, (name, (estimates, lows, highs)) in zip(axes[0], panels.items(), strict=True):
        estimates, lows, highs = (np.asarray(v, float) for v in (estimates, lows, highs))
        shown = np.isfinite(estimates)
        axis.hlines(y[shown], lows[shown], highs[shown], color="C0", linewidth=1.2)
        axis.plot(estimates[shown], y[shown], "o", color="C0", markersize=3.5)
        for row in np.flatnonzero(~shown):
            axis.text(0.5, y[row], "n/a", ha="center", va="center", fontsize=6, color="0.4")
        if reference is not None and np.isfinite(reference.get(name, np.nan)):
            axis.axvline(reference[name], color="0.3", linestyle=":", linewidth=0.8)
        axis.set_xlim(-0.02, 1.02)
        axis.set_title(name, fontsize=8)
        axis.grid(axis="x", alpha=0.3)
        axis.tick_params(labelsize=6)
    axes[0][0].set_yticks(y, labels)
    axes[0][0].set_ylim(-0.7, rows - 0.3)
    if title:
        figure.suptitle(title, fontsize=8)
    return figure


def save(figure: Figure, path: str | Path) -> Path:
    """Write ``figure`` as PNG (tight bounding box; the folders made as needed) and close it; returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, bbox_inches="tight")
    plt.close(figure)
    return path
