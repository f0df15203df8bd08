r"""``dermlab compare-cams``: CAMs of several trained classifiers on the same test images (arl Fig. 5).

One row of images, then one row of CAMs (predicted class) per checkpoint — e.g. ResNet-50 against
ARL-CNN50 to see which attends to the lesion rather than the background. The config(s) name the data
set; each checkpoint brings its own network (any classifier of the suite, ARL and RAN included).

    dermlab compare-cams -c experiments/arl/base.yaml --data.init_args.root /data/isic2017 \
        --ckpt runs/resnet50/checkpoints/best.ckpt --ckpt runs/arl50/checkpoints/best.ckpt \
        --labels ResNet50 ARL-CNN50 --n 8
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from dermlab.figures import image_grid, save


def main(argv: list[str]) -> Path:
    """Run ``dermlab compare-cams``: one figure with a row of test images and a row of CAMs per checkpoint.

    Args:
        argv: the arguments after ``compare-cams``: ``-c CONFIG`` (repeatable), ``--ckpt`` per model, ``--labels``,
            ``--n``, ``--split``, ``--out``; the rest are config overrides (``--data.init_args.root DIR``).

    Returns:
        The written PNG (``--out``).

    Raises:
        SystemExit: a ``--labels`` count other than the ``--ckpt`` count.
    """
    parser = argparse.ArgumentParser(prog="dermlab compare-cams", description=__doc__.splitlines()[0])
    parser.add_argument("--config", "-c", action="append", required=True, help="config(s) naming the data set")
    parser.add_argument("--ckpt", action="append", required=True, help="a trained classifier (repeat for more)")
    parser.add_argument("--labels", nargs="*", help="a row label per checkpoint (default: the backbone names)")
    parser.add_argument("--n", type=int, default=8, help="test images shown")
    parser.add_argument("--split", default="test")
    parser.add_argument("--out", default="runs/compare_cams/cams.png")
    args, overrides = parser.parse_known_args(argv)
    from datamodules.transforms import denormalise, renormalise
    from dermlab.commands.trainer import evaluation_dataset
    from lightning_modules.nets.backbone import classifier_net_from_checkpoint
    from lightning_modules.nets.cam import class_activation_maps
    from lightning_modules.normalisation import backbone_normalisation

    if args.labels and len(args.labels) != len(args.ckpt):
        raise SystemExit(f"dermlab compare-cams: {len(args.labels)} labels for {len(args.ckpt)} checkpoints")
    data, dataset = evaluation_dataset(args.config, overrides, args.split)
    images = torch.stack([dataset[i]["image"] for i in range(min(args.n, len(dataset)))])
    pictures = list(denormalise(images, data.normalisation))
    shown, cams, titles = list(pictures), [None] * len(pictures), [dataset.table.ids[i] for i in range(len(images))]
    summary = {}
    for index, checkpoint in enumerate(args.ckpt):
        net = classifier_net_from_checkpoint(checkpoint).eval()
        label = args.labels[index] if args.labels else torch.load(checkpoint, map_location="cpu",
                                                                   weights_only=False)["hyper_parameters"]["backbone"]
        inputs = renormalise(images, data.normalisation, backbone_normalisation(net))
        maps, predicted = class_activation_maps(net, inputs)
        shown += pictures
        cams += [m.numpy() for m in maps]
        titles += [f"{label}: {data.class_names[p][:12]}" for p in predicted]
        summary[label] = [data.class_names[p] for p in predicted]
    figure = image_grid(shown, cams, titles, columns=len(pictures),
                        suptitle="CAMs of the predicted class per model (rows) on the same images (arl Fig. 5)")
    path = save(figure, args.out)
    print(json.dumps({"figure": str(path), "predicted": summary}))
    return path
