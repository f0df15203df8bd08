"""``dermlab postprocess``: dense CRF + morphology on mask files any model wrote (``isic2018`` paper 002 §1).

Reads every ``ISIC_xxxxxxx*.png`` of ``--masks`` (0/255 masks, or grey-level probability maps 0–255), its image
``ISIC_xxxxxxx.jpg`` from ``--images``, refines it with :func:`dermlab.imaging.postprocess.postprocess` and writes the
result under the same name, 0/255, into ``--out`` — ready for ``dermlab score --seg``.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
from PIL import Image

from dermlab.errors import DataError
from dermlab.files.io import load_rgb
from dermlab.files.listing import images_by_stem, list_images
from dermlab.files.masks import write_mask
from dermlab.imaging.postprocess import PostProcess, postprocess


def main(argv: list[str]) -> None:
    """Run ``dermlab postprocess``: refine every mask of ``--masks`` and print a JSON summary (masks, how many
    changed, the settings).

    Args:
        argv: the arguments after ``postprocess``: ``--images``, ``--masks``, ``--out`` and the settings of
            :class:`~dermlab.imaging.postprocess.PostProcess`.

    Raises:
        DataError: no ``ISIC_xxxxxxx*.png`` mask, a mask without its image, or a mask of another size.
    """
    defaults = PostProcess()
    parser = argparse.ArgumentParser(prog="dermlab postprocess", description=__doc__.splitlines()[0])
    parser.add_argument("--images", required=True, help="folder of the ISIC_xxxxxxx.jpg images")
    parser.add_argument("--masks", required=True, help="folder of predicted masks or probability maps (PNG)")
    parser.add_argument("--out", required=True, help="folder to write the refined masks to")
    parser.add_argument("--no-crf", action="store_true", help="morphology only")
    parser.add_argument("--iterations", type=int, default=defaults.iterations, help="CRF mean-field iterations")
    parser.add_argument("--min-island", type=float, default=defaults.min_island,
                        help="drop parts smaller than this fraction of the image")
    parser.add_argument("--no-fill-holes", action="store_true")
    parser.add_argument("--keep-largest", action="store_true",
                        help="keep only the largest component (default: every component of at least --min-island)")
    args = parser.parse_args(argv)
    settings = PostProcess(crf=not args.no_crf, iterations=args.iterations, min_island=args.min_island,
                           fill_holes=not args.no_fill_holes, keep_largest=args.keep_largest)
    masks_dir, images_dir, out = Path(args.masks), Path(args.images), Path(args.out)
    masks = list_images(masks_dir, keep=lambda p: p.suffix.lower() == ".png" and re.match(r"ISIC_\d{7}", p.name))
    images = images_by_stem(images_dir)
    if not masks:
        raise DataError(f"'{masks_dir}' holds no ISIC_xxxxxxx*.png masks.")
    out.mkdir(parents=True, exist_ok=True)
    changed = 0
    for mask_path in masks:
        image_path = images.get(mask_path.name[:12], images_dir / f"{mask_path.name[:12]}.jpg")
        if not image_path.is_file():
            raise DataError(f"no image '{image_path}' for mask '{mask_path}'; --images must hold the images the "
                            "masks were predicted for.")
        image = load_rgb(image_path)
        with Image.open(mask_path) as mask_image:
            probability = np.asarray(mask_image.convert("L"), dtype=np.float32) / 255.0
        if probability.shape != image.shape[:2]:
            raise DataError(f"mask '{mask_path}' is {probability.shape[1]}×{probability.shape[0]} pixels but its image "
                            f"is {image.shape[1]}×{image.shape[0]}; masks must have their image's size.")
        refined = postprocess(image, probability, settings)
        changed += int((refined != (probability > 0.5)).any())
        write_mask(out / mask_path.name, refined)
    print(json.dumps({"masks": len(masks), "changed": changed, "out": str(out), "settings": vars(settings)}))
