"""``dermlab prepare``: fill the preprocessing cache with resized copies of images and masks."""

from __future__ import annotations

import argparse
import json

from datamodules import DATAMODULES
from datamodules.cache import FORMATS, prepare_cache


def main(argv: list[str]) -> None:
    """Run ``dermlab prepare``: write the cached copies of a data set's images (and masks) and print the number of
    images per split as JSON.

    Args:
        argv: the arguments after ``prepare``: ``--dataset``, ``--root``, ``--max-side``, ``--cache-dir``,
            ``--workers``, ``--format``.
    """
    parser = argparse.ArgumentParser(prog="dermlab prepare",
                                     description="Fill the preprocessing cache: resized copies of images and masks.")
    parser.add_argument("--dataset", required=True, choices=sorted(DATAMODULES))
    parser.add_argument("--root", required=True, help="the data set folder as downloaded")
    parser.add_argument("--max-side", type=int, required=True, help="longer side of the cached copies, in pixels")
    parser.add_argument("--cache-dir", default=None, help="cache folder (default ~/.cache/dermlab)")
    parser.add_argument("--workers", type=int, default=4, help="threads decoding and writing")
    parser.add_argument("--format", default="npy", choices=FORMATS,
                        help="npy: raw uint8 arrays, fastest to read (default); png: about half the disk, slower")
    args = parser.parse_args(argv)
    counts = prepare_cache(args.dataset, args.root, args.max_side, args.cache_dir, args.workers, format=args.format)
    print(json.dumps({"dataset": args.dataset, "max_side": args.max_side, "format": args.format, "images": counts}))
