"""``dermlab objsize``: the data set's morphological object size Obj from a trained classifier (dds §2.2).

The config(s) say which data set (and input size); the checkpoint gives the network. CAMs come from
:func:`lightning_modules.nets.cam.class_activation_maps` — the gradient form, which
equals the paper's A_c = Σ_k w_k^c f_k exactly for GAP + FC heads (tested) and also serves other
heads (Grad-CAM weights), so no extra dependency is needed. Training images are read with the
evaluation transforms (no augmentation) at the network's input size, so Obj is in the same pixels
as the LERF it is compared with.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib.patches as patches

from dermlab.figures import STYLE, save
from lightning_modules.nets.object_size import estimate_object_size

if TYPE_CHECKING:
    import numpy as np
    import torch

    from datamodules.transforms import Normalisation
    from lightning_modules.nets.object_size import ObjectBox


def panels(examples: Sequence[tuple[torch.Tensor, np.ndarray, ObjectBox]], path: Path,
           normalisation: Normalisation) -> Path:
    """Fig. 3 of the paper per example: image, CAM, summary mask (≥ 0.5), central box, grown box; one row per
    (normalised (3, H, W) image, (H, W) CAM in [0, 1], box) example of
    :func:`~lightning_modules.nets.object_size.estimate_object_size`, saved to ``path``."""
    import matplotlib.pyplot as plt

    from datamodules.transforms import denormalise

    with plt.rc_context(STYLE):
        figure, axes = plt.subplots(len(examples), 5, figsize=(8, 1.7 * len(examples)), squeeze=False)
    for row, (image, cam, box) in zip(axes, examples, strict=True):
        picture = denormalise(image[None], normalisation)[0]
        for axis, (title, shown) in zip(row, [("image", picture), ("CAM", cam), ("summary mask δ=0.5", cam >= 0.5),
                                              ("central box δ'=0.9", cam), (f"grown box: {box.size:.1f} px", picture)],
                                        strict=True):
            axis.imshow(shown, cmap="jet" if shown is cam else "gray" if shown.ndim == 2 else None)
            axis.set_title(title, fontsize=7)
            axis.axis("off")
        for axis, (top, left, bottom, right), colour in ((row[3], box.central, "white"), (row[4], box.grown, "red")):
            axis.add_patch(patches.Rectangle((left - 0.5, top - 0.5), right - left + 1, bottom - top + 1,
                                             fill=False, edgecolor=colour, linewidth=1.2))
    return save(figure, path)


def main(argv: list[str]) -> float:
    """Run ``dermlab objsize``: estimate Obj on sampled training images, write ``objsize.json`` and the panels.

    Args:
        argv: the arguments after ``objsize``: ``-c CONFIG`` (repeatable), ``--ckpt_path``, ``--samples``,
            ``--seed``, ``--out``; the rest are config overrides (``--data.init_args.root DIR``).

    Returns:
        Obj, the mean √(grown box area), in pixels of the network input.
    """
    parser = argparse.ArgumentParser(prog="dermlab objsize", description="Morphological object size from CAMs.")
    parser.add_argument("--config", "-c", action="append", required=True, help="the classifier's config(s)")
    parser.add_argument("--ckpt_path", required=True, help="the trained classifier (stage 1)")
    parser.add_argument("--samples", type=int, default=200, help="training images sampled")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/objsize", help="folder for objsize.json and the panels")
    args, overrides = parser.parse_known_args(argv)
    from dermlab.commands.trainer import build_cli
    from lightning_modules.nets.backbone import classifier_net_from_checkpoint
    from lightning_modules.normalisation import backbone_normalisation

    cli = build_cli([a for c in args.config for a in ("-c", c)] + overrides
                    + ["--run.wandb", "disabled", "--trainer.logger", "false"], run=False)
    net = classifier_net_from_checkpoint(args.ckpt_path)  # the config gives the data; the checkpoint the network
    data = cli.datamodule
    data.normalisation = backbone_normalisation(net)
    images = data.dataset("train", augment=False, views=1)
    obj, boxes, examples = estimate_object_size(net, images, args.samples, args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    figure = panels(examples, out / "objsize_panels.png", data.normalisation)
    (out / "objsize.json").write_text(json.dumps({"obj": obj, "images": len(boxes), "input_size": data.image_size,
                                                  "checkpoint": args.ckpt_path,
                                                  "sizes": [round(b.size, 3) for b in boxes]}))
    print(json.dumps({"obj": round(obj, 2), "images": len(boxes), "input_size": data.image_size}))
    print(f"# panels: {figure}")
    return obj
