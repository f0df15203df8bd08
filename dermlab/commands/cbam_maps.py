r"""``dermlab cbam-maps``: CBAM spatial maps and best channels of several trained models on the same hardest and
easiest test images (``weighting`` paper Fig. 3–4).

For each class the test image with the highest (hardest) and the lowest (easiest) cross-entropy, averaged over
the given models, is chosen. Each model then shows its CBAM spatial attention map and the feature map of its
best channel (the highest channel-attention weight) — of the last decision on the predicted path for the
hierarchical model. Models are checkpoints or finished run / grid cell folders of ``CBAMClassifier`` or
``HierarchicalClassifier`` (e.g. the cells of Table 3: CEL, CEL-CB, CEL-SPL, ...). Writes
``<out>/hardest.png`` and ``<out>/easiest.png``.

    dermlab cbam-maps -c experiments/weighting/base.yaml --data.init_args.root /data/ham10000 \
        --run runs/grids/weighting/table3_hierarchical/loss=CEL__weighting=-__fold=0 \
        --run runs/grids/weighting/table3_hierarchical/loss=CEL__weighting=OHEM__fold=0 --labels CEL OHEM
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from lightning_modules.weighting import CBAMClassifier, HierarchicalClassifier


def load_module(source: str) -> CBAMClassifier | HierarchicalClassifier:
    """The ``weighting`` module of a checkpoint or run folder (flat or hierarchical, told by its hyper-parameters),
    its weights loaded, in eval mode on the CPU.

    Raises:
        SystemExit: the checkpoint is neither a ``CBAMClassifier`` nor a ``HierarchicalClassifier`` run.
    """
    from lightning_modules.nets.backbone import run_checkpoint
    from lightning_modules.weighting import CBAMClassifier, HierarchicalClassifier

    checkpoint = torch.load(run_checkpoint(source), map_location="cpu", weights_only=False)
    hp = dict(checkpoint.get("hyper_parameters", {}))
    cls = HierarchicalClassifier if "lstm_hidden" in hp else CBAMClassifier if "cbam_dropout" in hp else None
    if cls is None:
        raise SystemExit(f"dermlab cbam-maps: '{source}' is not a CBAMClassifier / HierarchicalClassifier run")
    for key in [k for k in hp if k.startswith("_")]:  # LightningCLI bookkeeping (_class_path, _instantiator)
        hp.pop(key)
    hp["pretrained_weights"] = None  # the checkpoint holds the weights
    module = cls(**{k: v for k, v in hp.items() if k not in ("optimizer", "scheduler")})
    module.load_state_dict(checkpoint["state_dict"], strict=False)
    return module.eval()


def attention(module: CBAMClassifier | HierarchicalClassifier, images: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(log-probabilities (B, K), spatial maps (B, h, w), best-channel feature maps (B, h, w))."""
    net = module.net
    with torch.no_grad():
        features = net.backbone.forward_features(images)
        log_probs = net(images).float().log_softmax(-1)
        if hasattr(net, "last_decision_maps"):
            spatial, channel = net.last_decision_maps(log_probs.argmax(1))
        else:
            spatial, channel = net.maps.spatial, net.maps.channel
    best = channel.argmax(1)
    return log_probs, spatial, features[torch.arange(len(images)), best]


def main(argv: list[str]) -> Path:
    """Run ``dermlab cbam-maps``: draw the hardest and easiest test image per class with each model's CBAM maps.

    Args:
        argv: the arguments after ``cbam-maps``: ``-c CONFIG`` (repeatable), ``--run`` per model, ``--labels``,
            ``--max-images``, ``--split``, ``--out``; the rest are config overrides (``--data.init_args.root DIR``).

    Returns:
        The ``--out`` folder, which now holds ``hardest.png`` and ``easiest.png``.

    Raises:
        SystemExit: a ``--labels`` count other than the ``--run`` count, or a run that is not a CBAM model.
    """
    parser = argparse.ArgumentParser(prog="dermlab cbam-maps", description=__doc__.splitlines()[0])
    parser.add_argument("--config", "-c", action="append", required=True, help="config(s) naming the data set")
    parser.add_argument("--run", action="append", required=True, help="a checkpoint or run folder (repeat)")
    parser.add_argument("--labels", nargs="*", help="a row label per model (default: its loss / weighting)")
    parser.add_argument("--max-images", type=int, default=400, help="test images searched for hard / easy ones")
    parser.add_argument("--split", default="test")
    parser.add_argument("--out", default="runs/cbam_maps")
    args, overrides = parser.parse_known_args(argv)
    from datamodules.transforms import denormalise, renormalise
    from dermlab.commands.trainer import evaluation_dataset
    from dermlab.figures import image_grid, save

    if args.labels and len(args.labels) != len(args.run):
        raise SystemExit(f"dermlab cbam-maps: {len(args.labels)} labels for {len(args.run)} models")
    data, dataset = evaluation_dataset(args.config, overrides, args.split)
    items = [dataset[i] for i in range(min(args.max_images, len(dataset)))]
    images = torch.stack([x["image"] for x in items])
    labels = torch.tensor([x["label"] for x in items])
    modules = [load_module(source) for source in args.run]
    names = args.labels or [f"{m.hparams.loss}/{m.hparams.class_weighting or '-'}" for m in modules]
    outputs = [attention(m, renormalise(images, data.normalisation, m.input_normalisation)) for m in modules]
    losses = torch.stack([F.nll_loss(out[0], labels, reduction="none") for out in outputs]).mean(0)
    size = tuple(images.shape[-2:])
    upsample = lambda maps: F.interpolate(maps[:, None].float(), size=size, mode="bilinear")[:, 0]  # noqa: E731
    written = {}
    for kind, pick in (("hardest", torch.argmax), ("easiest", torch.argmin)):
        chosen = [int(torch.nonzero(labels == k).flatten()[pick(losses[labels == k])])
                  for k in range(len(data.class_names)) if (labels == k).any()]
        pictures = list(denormalise(images[chosen], data.normalisation))
        shown, maps = list(pictures), [None] * len(chosen)
        titles = [f"{data.class_names[int(labels[i])]}" for i in chosen]
        for name, (log_probs, spatial, best) in zip(names, outputs, strict=True):
            for row, values in (("spatial", spatial), ("best channel", best)):
                picked = upsample(values[chosen])
                low = picked.flatten(1).min(1).values[:, None, None]
                high = picked.flatten(1).max(1).values[:, None, None]
                maps += list(((picked - low) / (high - low).clamp_min(1e-12)).numpy())
                shown += pictures
                titles += [f"{name} {row}: {data.class_names[int(log_probs[i].argmax())][:6]}" for i in chosen]
        figure = image_grid(shown, maps, titles, columns=len(chosen),
                            suptitle=f"{kind} test image per class: CBAM spatial map and best channel per model "
                                     "(weighting Fig. 3–4)")
        written[kind] = str(save(figure, Path(args.out) / f"{kind}.png"))
    print(json.dumps({"figures": written, "models": names}))
    return Path(args.out)
