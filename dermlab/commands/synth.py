"""``dermlab synth``: write a synthetic data set in a data set's official on-disk layout.

``--n`` counts training images for most data sets, all images for derm7pt and the whole pool for HAM10000
(``datamodules.synthetic.SIZES``, listed by ``--help``); an ``--n`` below the data set's minimum, with which its
datamodule's default split could not be set up, is refused with the minimum named, as is a negative ``--seed``.
"""

from __future__ import annotations

import argparse
import json
import textwrap

from datamodules.synthetic import SIZES, WRITERS, write_synthetic

MIN_SIZE = 8  # pixels: the renderer's smallest side


def sizes_table() -> str:
    """One line per data set: what ``--n`` counts and the smallest ``--n`` accepted."""
    return "\n".join(textwrap.fill(f"{name:<15} {size.counts}; --n {size.minimum} or more ({size.why})", width=100,
                                   initial_indent="  ", subsequent_indent=" " * 18, break_on_hyphens=False)
                     for name, size in sorted(SIZES.items()))


def main(argv: list[str]) -> None:
    """Run ``dermlab synth``: write the synthetic data set and print the images written per split as JSON.

    Args:
        argv: the arguments after ``synth``: ``--dataset``, ``--out``, ``--n``, ``--size``, ``--seed``.

    Raises:
        SystemExit: status 2 for an ``--n`` below the data set's minimum, a negative seed or a side under 8 px.
        DataError: ``--out`` holds files that are not a finished synthetic write.
    """
    parser = argparse.ArgumentParser(
        prog="dermlab synth", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Write a synthetic data set in the official on-disk layout.",
        epilog=f"What --n counts, and the smallest --n accepted (for the datamodule's default split):\n{sizes_table()}")
    parser.add_argument("--dataset", required=True, choices=sorted(WRITERS))
    parser.add_argument("--out", required=True, help="folder to write (the datamodule's root)")
    parser.add_argument("--n", type=int, default=200,
                        help="how many images: training images for most data sets, all images for derm7pt, the "
                             "whole pool for ham10000 (listed below)")
    parser.add_argument("--size", type=int, default=64, help=f"image side in pixels ({MIN_SIZE} or more)")
    parser.add_argument("--seed", type=int, default=0, help="0 or more; the same seed writes the same bytes")
    args = parser.parse_args(argv)
    size = SIZES[args.dataset]
    if args.n < size.minimum:
        parser.error(f"--n {args.n} is too small for {args.dataset}: --n counts {size.counts}, and at least "
                     f"{size.minimum} are needed ({size.why}); use --n {size.minimum} or more.")
    if args.seed < 0:
        parser.error(f"--seed {args.seed} is negative; use 0 or more.")
    if args.size < MIN_SIZE:
        parser.error(f"--size {args.size} is too small; use {MIN_SIZE} pixels or more.")
    counts = write_synthetic(args.dataset, args.out, args.n, args.size, args.seed)
    print(json.dumps({"dataset": args.dataset, "out": args.out, "images": counts}))
