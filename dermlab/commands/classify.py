"""``dermlab classify``: an exported model package on any image files or folders, one CSV row per image.

Any JPEG / PNG (/ WebP / BMP / TIFF) files or folders of them (searched recursively; no challenge layout), through
the run's evaluation preprocessing and prediction rule (:class:`lightning_modules.nets.package.ModelPackage`). The
CSV has one row per image: ``image`` (the path), one probability column per class, ``predicted`` (the argmax class)
and, with ``--cams``, ``cam`` (the overlay's file). ``--tta`` uses the run's test-time views (several views, D4
averaging) where it had them; ``--onnx`` runs ``model.onnx`` with onnxruntime instead of PyTorch; ``--cams DIR``
writes one CAM overlay per image (the class activation map of the predicted class,
:func:`lightning_modules.nets.cam.class_activation_maps`). An image that cannot be read is named on stderr, skipped
and counted; it never leaves a silent gap.

A model with a patient-metadata branch needs ``--metadata CSV``: one row per image, its image in a column ``image``,
``image_id``, ``image_name`` or ``isic_id`` (the file's name without extension) and the fields the model takes under
the suite's names (``age``, ``sex``, ``localization``) or the data sets' official ones (``age_approx``,
``age_approximate``, ``anatom_site_general``, ``anatom_site_general_challenge``), empty where unknown
(:mod:`dermlab.files.patient_csv`). They are encoded as the run's training split was (``config.json``'s
``metadata``); a category it never had counts as missing, and is counted in a log line.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dermlab.errors import DataError

log = logging.getLogger(__name__)


def write_cams(package: object, images: torch.Tensor, names: list[str], folder: Path, used: set[str],
               classes: torch.Tensor | None = None, metadata: torch.Tensor | None = None) -> list[str]:
    """One PNG per image in ``folder``: the image with the CAM of ``classes`` (B,) — the classes the CSV predicts;
    default: the network's prediction for the image alone — blended on top (``jet``, 40 %), named
    ``<stem>_cam.png`` (``<stem>_2_cam.png``, ... where stems repeat). ``metadata`` (B, F): the images' encoded
    metadata, for a model with a metadata branch. Returns the files' paths, or ``[]`` for a network without a CAM
    (e.g. the ``patch`` GRU)."""
    from matplotlib import colormaps
    from PIL import Image

    from datamodules.transforms import Normalisation, denormalise
    from lightning_modules.nets.cam import class_activation_maps
    from lightning_modules.nets.metadata_branch import fed

    pre = package.preprocessing
    if images.ndim == 5:
        images = images[:, 0]  # the first view or crop
    try:
        with fed(package.net, metadata):
            cams, _ = class_activation_maps(package.net, images, classes)
    except (NotImplementedError, AttributeError) as reason:
        log.warning("no CAMs for this network (%s)", reason)
        return []
    pictures = denormalise(images, Normalisation(tuple(pre["mean"]), tuple(pre["std"])))
    colours = colormaps["jet"](cams.cpu().numpy())[..., :3]
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for picture, colour, name in zip(pictures, colours, names, strict=True):
        stem, index = Path(name).stem, 1
        while stem in used:
            index += 1
            stem = f"{Path(name).stem}_{index}"
        used.add(stem)
        blended = (0.6 * picture + 0.4 * colour).clip(0, 1)
        Image.fromarray((blended * 255).round().astype(np.uint8)).save(folder / f"{stem}_cam.png")
        written.append(str(folder / f"{stem}_cam.png"))
    return written


def classify(model: Path, inputs: list[str], out: Path, tta: bool = False, onnx: bool = False,
             cams: Path | None = None, batch_size: int = 16, workers: int = 0, metadata: Path | None = None
             ) -> pd.DataFrame:
    """Classify the images of ``inputs`` with the package ``model`` and write ``out``; returns the table.

    ``metadata``: the CSV of the images' patient fields, for a model with a metadata branch (module docstring).

    Raises:
        DataError: the package is incomplete or altered, ``--onnx`` without ``model.onnx``, no image could be read;
            a metadata model without ``--metadata``, an image-only one with it, or a CSV that lacks an image's row or
            a field's column or holds a bad age (each named, with the CSV).
    """
    from rich.progress import Progress

    from datamodules.datasets.image_files import collect_images
    from lightning_modules.nets.package import ONNX, ModelPackage

    if out.is_dir():
        raise DataError(f"--out '{out}' is a folder; give the CSV file to write (e.g. {out / 'predictions.csv'})")
    if cams is not None and cams.exists() and not cams.is_dir():
        raise DataError(f"--cams '{cams}' is a file; give a folder for the CAM images")
    if batch_size < 1 or workers < 0:
        raise DataError(f"--batch-size must be ≥ 1 and --workers ≥ 0, got {batch_size} and {workers}")
    from dermlab.files.patient_csv import read_patient_csv

    package = ModelPackage.load(model)
    encoding = package.metadata_encoding
    if metadata is not None and encoding is None:
        raise DataError(f"--metadata '{metadata}': this model takes images only (it was trained without patient "
                        "metadata); drop --metadata")
    paths = collect_images(inputs)
    patient = None if metadata is None else read_patient_csv(metadata, paths, encoding.fields)
    encoded = None if patient is None else torch.from_numpy(encoding.encode(patient)[0])  # for the CAMs
    backend = None
    if onnx:
        if not (model / ONNX).is_file():
            raise DataError(f"'{model / ONNX}' does not exist: export with --onnx, or classify without --onnx")
        from lightning_modules.nets.onnx_export import onnx_backend

        backend = onnx_backend(model / ONNX, threads=torch.get_num_threads())
    if tta and not package.has_test_time_views():
        log.info("this model was tested with one view per image: --tta changes nothing")
    probabilities = np.full((len(paths), len(package.class_names)), np.nan)
    unreadable: list[tuple[int, str]] = []
    used: set[str] = set()
    cam_files: dict[int, str] = {}
    start = time.perf_counter()
    with Progress(transient=True, disable=len(paths) < 2 * batch_size) as progress:
        task = progress.add_task("classifying", total=len(paths))
        for indices, values, errors in package.batches(paths, tta, batch_size, workers, backend, patient):
            probabilities[indices] = values
            unreadable += errors
            if cams is not None and len(indices):
                dataset = package.dataset([paths[i] for i in indices], tta=False)
                batch = torch.stack([dataset[j]["image"] for j in range(len(indices))])
                written = write_cams(package, batch, [str(paths[i]) for i in indices], cams, used,
                                     torch.from_numpy(values.argmax(1)),
                                     None if encoded is None else encoded[torch.from_numpy(indices)])
                cam_files.update(zip(indices.tolist(), written, strict=False))
            progress.advance(task, len(indices) + len(errors))
    seconds = time.perf_counter() - start
    for index, message in unreadable:
        log.warning("skipped '%s': %s", paths[index], message)
    read = np.flatnonzero(~np.isnan(probabilities[:, 0]))
    if not len(read):
        raise DataError(f"none of the {len(paths)} images could be read (the first: {unreadable[0][1]})")
    table = pd.DataFrame(probabilities[read], columns=package.class_names)
    table.insert(0, "image", [str(paths[i]) for i in read])
    table["predicted"] = [package.class_names[i] for i in probabilities[read].argmax(1)]
    if cam_files:
        table["cam"] = [cam_files.get(i, "") for i in read]
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False, float_format="%.9g")
    skipped = f"; {len(unreadable)} unreadable file(s) skipped (named above)" if unreadable else ""
    log.info("classified %d image(s) in %.1f s (%.1f images/s, %s%s) -> %s%s", len(read), seconds,
             len(read) / seconds, "onnxruntime" if onnx else "PyTorch", ", test-time views" if tta else "", out,
             skipped)
    return table


def main(argv: list[str] | None = None) -> pd.DataFrame:
    """Run ``dermlab classify``; returns the table written."""
    parser = argparse.ArgumentParser(prog="dermlab classify", description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+", help="image files and/or folders (searched recursively)")
    parser.add_argument("--model", type=Path, required=True, help="the model package folder (dermlab export)")
    parser.add_argument("--out", type=Path, default=Path("predictions.csv"),
                        help="the CSV to write (default: predictions.csv in the current folder)")
    parser.add_argument("--tta", action="store_true", help="the run's test-time views (views, D4), where it had them")
    parser.add_argument("--onnx", action="store_true", help="run model.onnx with onnxruntime instead of PyTorch")
    parser.add_argument("--cams", type=Path, default=None,
                        help="write a CAM overlay per image into this folder (its file in the CSV's cam column)")
    parser.add_argument("--batch-size", type=int, default=16, help="images per forward pass (default 16)")
    parser.add_argument("--workers", type=int, default=0, help="image-decoding worker processes (default 0)")
    parser.add_argument("--metadata", type=Path, default=None,
                        help="for a model with patient metadata: a CSV with one row per image (an image column and "
                             "the model's fields, e.g. age, sex, localization; empty where unknown)")
    args = parser.parse_args(argv)
    table = classify(args.model, args.images, args.out, args.tta, args.onnx, args.cams, args.batch_size,
                     args.workers, args.metadata)
    print(f"wrote {len(table)} row(s) to {args.out}")
    return table
