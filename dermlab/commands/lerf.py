"""``dermlab lerf``: LERF of every conv layer of a backbone, as JSON, with the heat maps (dds Fig. 2)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from dermlab.figures import heatmaps, save
from lightning_modules.nets.lerf import GRADIENTS, create_net, lerf, paper_name


def main(argv: list[str]) -> dict[str, float]:
    """Run ``dermlab lerf``: print every layer's LERF as JSON and write the heat maps (and, for all layers, the
    table :class:`callbacks.layer_selection.LayerSelection` reads).

    Args:
        argv: the arguments after ``lerf``: ``--backbone``, ``--size``, ``--inits``, ``--layers``, ``--seed``,
            ``--gradient``, ``--out``.

    Returns:
        {layer (VGG's ``features.21`` as the paper's ``L21``): LERF in input pixels (√ of the area above the
        threshold), to 2 decimals}.
    """
    parser = argparse.ArgumentParser(prog="dermlab lerf", description="Layer-wise effective receptive field.")
    parser.add_argument("--backbone", default="vgg13_bn", help="timm name, or torchvision:<name>")
    parser.add_argument("--size", type=int, default=224, help="input side in pixels")
    parser.add_argument("--inits", type=int, default=20, help="He initialisations averaged")
    parser.add_argument("--layers", nargs="*", help="conv layers (module names, or L21 for VGG features.21)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gradient", choices=GRADIENTS, default="signed",
                        help="threshold the signed ∂q/∂p (the paper, §2.1) or |∂q/∂p|")
    parser.add_argument("--out", default="runs/lerf", help="folder for the heat-map PNG")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    values, maps = lerf(create_net(args.backbone), args.size, args.inits, args.layers, args.seed,
                        gradient=args.gradient)
    elapsed = time.perf_counter() - start
    named = {paper_name(k): round(v, 2) for k, v in values.items()}
    path = save(heatmaps({f"{paper_name(k)} ({values[k]:.0f})": m for k, m in maps.items()},
                         suptitle=f"{args.backbone} LERF maps at {args.size} px, {args.gradient} ∂q/∂p, "
                                 f"mean of {args.inits} inits"),
                Path(args.out) / f"lerf_{args.backbone.replace(':', '_')}_{args.size}.png")
    if not args.layers:  # the full table: LayerSelection reads it from here instead of recomputing it
        from lightning_modules.nets.lerf_table import lerf_cache_path, save_lerf_table

        save_lerf_table(lerf_cache_path(args.out, args.backbone, args.size, args.inits, args.seed,
                                        args.gradient), values)
    print(json.dumps(named))
    print(f"# {len(values)} layers, {args.inits} inits, {elapsed:.1f} s; heat maps: {path}")
    return named
