"""``dermlab synth``: write a synthetic data set in a data set's official on-disk layout."""

from __future__ import annotations

import argparse
import json

from datamodules.synthetic import WRITERS, write_synthetic


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="dermlab synth",
                                     description="Write a synthetic data set in the official on-disk layout.")
    parser.add_argument("--dataset", required=True, choices=sorted(WRITERS))
    parser.add_argument("--out", required=True, help="folder to write (the datamodule's root)")
    parser.add_argument("--n", type=int, default=200, help="training images (validation and test scale with it)")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    counts = write_synthetic(args.dataset, args.out, args.n, args.size, args.seed)
    print(json.dumps({"dataset": args.dataset, "out": args.out, "images": counts}))
